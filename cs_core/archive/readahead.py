"""Reading a layer stream ahead in a second thread, so decoding and hashing overlap extraction.

zlib/isal, zstandard, bz2, lzma and hashlib all release the GIL while they work on big buffers,
so with two cores the thread's work (reading the input, hashing it, decoding it, hashing the
decoded bytes) runs beside the extraction instead of before it: an import costs the larger of
the two, not their sum. Blocks go over a bounded queue, so a stalled consumer holds at most
``depth`` blocks of memory, however well the input compresses.
"""

from __future__ import annotations

import contextlib
import io
import queue
import threading
from typing import Any

#: Bytes per hand-over: big enough that per-block Python work (queue, calls) is noise, and that
#: hashlib and the decoders release the GIL on every call.
BLOCK = 1 << 20

#: How long close() waits for the thread to finish the block it is working on. A read of a
#: regular file or of data already decoded takes milliseconds; only a read blocked on a stalled
#: pipe can take longer, and then the thread (a daemon) ends as soon as that read returns.
_JOIN_TIMEOUT = 5.0

Item = memoryview | BaseException


def readinto(stream: Any, view: memoryview) -> int:
    """``stream.readinto(view)``, or ``read`` and a copy for streams without it."""
    method = getattr(stream, "readinto", None)
    if method is not None:
        return method(view) or 0
    data = stream.read(len(view))
    n = len(data)
    view[:n] = data
    return n


def _fill(inner: Any, buf: bytearray) -> tuple[int, BaseException | None]:
    """Fill ``buf`` from ``inner`` (short only at EOF); the error that stopped it, if any."""
    view = memoryview(buf)
    n = 0
    try:
        while n < len(buf):
            k = readinto(inner, view[n:])
            if not k:
                break
            n += k
    except BaseException as exc:  # handed to the consumer, who re-raises it in its own thread
        return n, exc
    return n, None


def _put(out: queue.Queue[Item], item: Item, stop: threading.Event) -> bool:
    """Queue ``item`` unless the consumer closed the reader first."""
    while not stop.is_set():
        try:
            out.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def _produce(inner: Any, out: queue.Queue[Item], stop: threading.Event, block: int) -> None:
    # No reference to the ReadAhead: an abandoned reader gets collected, and its close() (from
    # __del__) stops this loop.
    while not stop.is_set():
        buf = bytearray(block)
        n, error = _fill(inner, buf)
        if n and not _put(out, memoryview(buf)[:n], stop):
            return
        if error is not None or not n:
            _put(out, error if error is not None else memoryview(b""), stop)
            return


class ReadAhead(io.RawIOBase):
    """Reads ``inner`` ahead in a thread, block by block over a bounded queue.

    An error in the thread reaches the consumer in order: after the bytes read before it, and
    again on every later read (never as a silent end of stream). ``close()`` stops the thread,
    waits for it, then closes ``inner`` (when ``close_inner``) in the caller's thread, never
    while the thread may still be inside it. ``source_digest`` is handed through for
    :class:`cs_core.archive.compression.DigestReader`: the digest of exactly the bytes this
    reader gives out, computed in the thread.
    """

    def __init__(self, inner: Any, *, source_digest: Any = None, close_inner: Any = None,
                 depth: int = 4, block: int = BLOCK) -> None:
        self._queue: queue.Queue[Item] = queue.Queue(depth)
        self._current = memoryview(b"")
        self._error: BaseException | None = None
        self._eof = False
        self._close_inner = close_inner
        self.source_digest = source_digest
        self._stop = threading.Event()
        self._thread = threading.Thread(target=_produce, args=(inner, self._queue, self._stop, block),
                                        name="cs-readahead", daemon=True)
        self._thread.start()

    def readable(self) -> bool:
        return True

    def _next(self) -> None:
        item = self._queue.get()
        if isinstance(item, BaseException):
            self._error = item
        elif not item:
            self._eof = True
        else:
            self._current = item
            return
        # The thread's last act was queueing this: once it is joined, the caller that sees
        # the end or the error knows the thread is gone.
        self._thread.join()

    def readinto(self, b: Any) -> int:
        if self.closed:  # the thread is gone: waiting for its next block would hang
            raise ValueError("I/O operation on closed file")
        view = memoryview(b).cast("B")
        while not self._current:
            if self._error is not None:
                raise self._error
            if self._eof:
                return 0
            self._next()
        n = min(len(view), len(self._current))
        view[:n] = self._current[:n]
        self._current = self._current[n:]
        return n

    def close(self) -> None:
        if not self.closed:
            self._stop.set()
            with contextlib.suppress(queue.Empty):  # free a put() the thread may be blocked in
                while True:
                    self._queue.get_nowait()
            if self._thread is not threading.current_thread():
                self._thread.join(_JOIN_TIMEOUT)
            if self._close_inner is not None and not self._thread.is_alive():
                with contextlib.suppress(Exception):  # a failing decoder must not mask the real error
                    self._close_inner.close()
            self._current = memoryview(b"")
        super().close()
