"""A readable stream filled by a producer thread (so a diff never has to fit in memory)."""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Callable
from typing import Any, BinaryIO


class PipeStream(io.RawIOBase):
    """Read end of a pipe a thread writes into; the producer's error is raised at EOF."""

    def __init__(self, produce: Callable[[BinaryIO], None]) -> None:
        rfd, wfd = os.pipe2(os.O_CLOEXEC)
        self._reader = open(rfd, "rb", buffering=0)  # noqa: SIM115 - closed in close()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(produce, wfd), daemon=True)
        self._thread.start()

    def _run(self, produce: Callable[[BinaryIO], None], wfd: int) -> None:
        try:
            with open(wfd, "wb", buffering=1 << 20) as out:
                produce(out)
        except BrokenPipeError:
            pass  # the reader went away
        except BaseException as exc:  # re-raised in the reading thread
            self._error = exc

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        n = self._reader.readinto(b) or 0
        if n == 0:
            self._thread.join()
            if self._error is not None:
                err, self._error = self._error, None
                raise err
        return n

    def close(self) -> None:
        if not self.closed:
            self._reader.close()
            self._thread.join()
        super().close()
