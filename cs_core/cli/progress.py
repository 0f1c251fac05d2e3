"""A progress bar on stderr for long transfers, shown only when stderr is a terminal.

It takes the library's running totals (:mod:`cs_core.progress`) and draws, at most five times
a second, one line per transfer::

    applied [#########.........]  40.1 MiB / 80.0 MiB  50%  21.3 MiB/s  ETA 0:02

Without a known total it shows the bytes and the rate. On a pipe (or with ``--quiet``)
nothing is drawn at all, so scripts see only the command's own output.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Iterator
from typing import BinaryIO, TextIO

from cs_core.progress import Progress

_REDRAW = 0.2  # seconds between redraws
_BAR = 20  # cells in the bar


class ProgressLine:
    """Redraws one line for running totals of ``total`` bytes (``None``: unknown)."""

    def __init__(self, verb: str, total: int | None, stream: TextIO) -> None:
        self.verb = verb
        self.total = total
        self.stream = stream
        self.done = 0
        self._start = time.monotonic()
        self._last = 0.0
        self._shown = False
        # The library may report from a read-ahead thread while the main thread finishes.
        self._lock = threading.Lock()

    def __call__(self, done: int) -> None:
        with self._lock:
            self.done = done
            now = time.monotonic()
            if now - self._last >= _REDRAW:
                self._last = now
                self._draw(now)

    def _draw(self, now: float) -> None:
        self.stream.write("\r\x1b[K" + fit(self.text(now - self._start), self.stream))
        self.stream.flush()
        self._shown = True

    def text(self, elapsed: float) -> str:
        """The line for ``elapsed`` seconds since the start (a bar only with a total)."""
        rate = self.done / elapsed if elapsed > 0 else 0.0
        parts = [self.verb]
        total = self.total
        if total and self.done <= total:
            filled = self.done * _BAR // total
            parts.append("[" + "#" * filled + "." * (_BAR - filled) + "]")
            parts.append(f"{human(self.done)} / {human(total)}")
            parts.append(f"{self.done * 100 // total}%")
        else:
            parts.append(human(self.done))
        if rate > 0:
            parts.append(f"{human(int(rate))}/s")
            if total and self.done < total:
                parts.append("ETA " + _clock((total - self.done) / rate))
        return "  ".join(parts)

    def finish(self) -> None:
        """Draw the final state and end the line (nothing if nothing was ever drawn)."""
        with self._lock:
            if self._shown:
                self._draw(time.monotonic())
                self.stream.write("\n")
                self.stream.flush()
                self._shown = False


def human(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def _clock(seconds: float) -> str:
    s = int(seconds + 0.5)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def fit(text: str, stream: TextIO) -> str:
    """``text`` cut to the terminal's width, so the redraw never wraps onto a new line."""
    try:
        width = os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError, AttributeError):
        width = 0
    return text[: width - 1] if width > 20 else text  # 0: a terminal that never said


def make_progress(verb: str, total: int | None = None, stream: TextIO | None = None,
                  quiet: bool = False) -> ProgressLine | None:
    """A progress callback, or None when quiet or stderr is not a terminal."""
    stream = stream or sys.stderr
    if quiet or not stream.isatty():
        return None
    return ProgressLine(verb, total, stream)


@contextlib.contextmanager
def progress_reader(path: str, verb: str = "applied",
                    quiet: bool = False) -> Iterator[tuple[BinaryIO, Progress | None]]:
    """Open ``path`` (or stdin when empty) with a progress callback sized to the input."""
    if path:
        f: BinaryIO = open(path, "rb")  # noqa: SIM115  (closed below)
    else:
        f = sys.stdin.buffer
    try:
        total: int | None = None
        with contextlib.suppress(OSError):
            st = os.fstat(f.fileno())
            total = st.st_size if st.st_size > 0 else None
        line = make_progress(verb, total, quiet=quiet)
        yield f, line
        if line is not None:
            line.finish()
    finally:
        if path:
            f.close()
