"""The one progress convention of cs_core.

A progress callback is ``Callable[[int], None]`` and is called with a **running total**: the
bytes that crossed the API boundary so far, read from the stream you passed
(``Store.put_layer``, ``Store.apply_diff``, each blob of ``import_image``) or written to the
file you passed (``Store.diff``, each layer of ``export_image``). So, for a compressed input,
it counts compressed bytes and ends at the file's size. The totals only grow; a call comes at
least every :data:`STEP` bytes (inside large files too, not only between tar entries) and
exactly one call carries the final total, at the end (``0`` for an empty stream).

Callbacks run in whichever thread reads or writes your stream, which may be a read-ahead
thread of the decompressor: keep them quick and thread-safe (set a value, redraw a line).
The image API wraps the same totals in :class:`cs_core.images.BlobProgress` with the blob's
index and size.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any, BinaryIO

#: A progress callback: called with the running total of bytes.
Progress = Callable[[int], None]

#: Report at least this often (bytes).
STEP = 1 << 20


class _Totals:
    """Running total with a report every STEP bytes and one final report."""

    def __init__(self, report: Progress | None) -> None:
        self.report = report
        self.done = 0
        self._reported: int | None = None
        self._next = STEP

    def add(self, n: int) -> None:
        self.done += n
        if self.report is not None and self.done >= self._next:
            self._next = self.done + STEP
            self._reported = self.done
            self.report(self.done)

    def finish(self) -> None:
        if self.report is not None and self._reported != self.done:
            self._reported = self.done
            self.report(self.done)


class CountingReader(io.RawIOBase):
    """Reads through to ``inner``, reporting the running total (see the module's convention).

    The final report comes at the first end-of-file read, or from :meth:`finish` if the
    consumer stops before reading one.
    """

    def __init__(self, inner: BinaryIO, report: Progress | None) -> None:
        self.inner = inner
        self._totals = _Totals(report)

    @property
    def done(self) -> int:
        return self._totals.done

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        if self._totals.report is not None and len(b) > STEP:
            # A short read (allowed of a raw stream) so that a decoder asking for many MiB
            # at once still sees totals on the way.
            b = memoryview(b)[:STEP]
        readinto = getattr(self.inner, "readinto", None)
        if readinto is not None:
            n = readinto(b) or 0
        else:
            data = self.inner.read(len(b))
            n = len(data)
            b[:n] = data
        if n:
            self._totals.add(n)
        else:
            self._totals.finish()
        return n

    def finish(self) -> None:
        """Send the final total if it has not been sent."""
        self._totals.finish()


class CountingWriter(io.RawIOBase):
    """Writes through to ``inner``, reporting the running total; :meth:`finish` sends the
    final one (closing this wrapper does not close ``inner``)."""

    def __init__(self, inner: BinaryIO, report: Progress | None = None) -> None:
        self.inner = inner
        self._totals = _Totals(report)

    @property
    def done(self) -> int:
        return self._totals.done

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        view = memoryview(b).cast("B")
        # In STEP pieces: a large file's content comes as one write.
        for start in range(0, len(view), STEP):
            piece = view[start:start + STEP]
            _write_all(self.inner, piece, len(piece))
            self._totals.add(len(piece))
        return len(view)

    def flush(self) -> None:
        self.inner.flush()

    def finish(self) -> None:
        self._totals.finish()


def _write_all(out: BinaryIO, data: Any, size: int) -> None:
    """A raw file may take part of a write; the rest must not be dropped."""
    written = out.write(data)
    if written is None or written >= size:
        return
    view = memoryview(data).cast("B")
    while written < size:
        n = out.write(view[written:])
        written += size - written if n is None else n
