"""The progress convention of image import and export: running totals per blob."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any, BinaryIO

import attrs


@attrs.frozen
class BlobProgress:
    """``done`` of ``total`` bytes (``None``: unknown) of one blob; ``index`` counts from 0."""

    digest: str
    index: int
    count: int
    done: int
    total: int | None


ProgressCallback = Callable[[BlobProgress], None]


class CountingReader(io.RawIOBase):
    """Reports the running total read from ``inner`` (about every MiB, and at EOF)."""

    def __init__(self, inner: BinaryIO, report: Callable[[int], None]) -> None:
        self.inner = inner
        self.report = report
        self.done = 0
        self._next = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        data = self.inner.read(len(b))
        n = len(data)
        b[:n] = data
        self.done += n
        if n == 0 or self.done >= self._next:
            self._next = self.done + (1 << 20)
            self.report(self.done)
        return n


class CountingWriter(io.RawIOBase):
    """Counts (and reports) what is written through to ``inner``."""

    def __init__(self, inner: BinaryIO, report: Callable[[int], None] | None = None) -> None:
        self.inner = inner
        self.report = report
        self.done = 0
        self._next = 0

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        n = self.inner.write(b)
        self.done += len(b)
        if self.report is not None and self.done >= self._next:
            self._next = self.done + (1 << 20)
            self.report(self.done)
        return n if n is not None else len(b)
