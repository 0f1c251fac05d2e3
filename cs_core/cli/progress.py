"""A byte counter on stderr for long transfers, shown only when stderr is a terminal."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from typing import BinaryIO, TextIO

Progress = Callable[[int], None]


class ProgressLine:
    """Redraws one line (``applied 12.3 MiB of 40.0 MiB``) at most a few times a second."""

    def __init__(self, verb: str, total: int | None, stream: TextIO) -> None:
        self.verb = verb
        self.total = total
        self.stream = stream
        self.done = 0
        self._last = 0.0
        self._shown = False

    def __call__(self, nbytes: int) -> None:
        self.done += nbytes
        now = time.monotonic()
        if now - self._last >= 0.2:
            self._last = now
            self._draw()

    def _draw(self) -> None:
        text = f"{self.verb} {_human(self.done)}"
        if self.total:
            text += f" of {_human(self.total)} ({min(100, self.done * 100 // self.total)}%)"
        self.stream.write("\r\x1b[K" + text)
        self.stream.flush()
        self._shown = True

    def finish(self) -> None:
        if self._shown:
            self._draw()
            self.stream.write("\n")
            self.stream.flush()


def _human(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{n} B"
        value /= 1024
    return f"{n} B"


def make_progress(verb: str, total: int | None = None,
                  stream: TextIO | None = None) -> ProgressLine | None:
    """A progress callback, or None when stderr is not a terminal (scripts see no noise)."""
    stream = stream or sys.stderr
    if not stream.isatty():
        return None
    return ProgressLine(verb, total, stream)


@contextlib.contextmanager
def progress_reader(path: str, verb: str = "applied") -> Iterator[tuple[BinaryIO, Progress | None]]:
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
        line = make_progress(verb, total)
        yield f, line
        if line is not None:
            line.finish()
    finally:
        if path:
            f.close()
