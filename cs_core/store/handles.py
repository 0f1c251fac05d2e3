"""The Pythonic side of a Store handle: closing it, and diffs as file objects.

Kept out of the façade so that it stays a list of Go's methods.
"""

from __future__ import annotations

import contextlib
import io
import os
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, BinaryIO, NoReturn, cast

from cs_core.errors import StoreClosed
from cs_core.store import content, layers

if TYPE_CHECKING:
    from cs_core.drivers.base import GraphDriver
    from cs_core.records.containers import ContainerStore
    from cs_core.records.images import ImageStore
    from cs_core.records.layers import LayerStore
    from cs_core.store.context import StoreContext


class _Closed:
    """Stands in for a closed store's parts: any use of them says the store is closed."""

    def __getattr__(self, name: str) -> NoReturn:
        raise StoreClosed()


_CLOSED: Any = _Closed()


def close_store(store: StoreContext) -> None:
    """Release the driver's resources unless a layer is still mounted (Go ``Shutdown(false)``,
    which instead fails then), drop the records held in memory, and make later use of the
    handle raise :class:`StoreClosed`. Closing twice is harmless."""
    if isinstance(store.layer_store, _Closed):
        return
    ls = store.layer_store
    with store.graph_lock.write_locked(), ls.writing():
        if not any(layer.mount_count > 0 for layer in ls.records):
            # Recorded as a write, so other handles re-create their driver before next use.
            store.note_driver_shut_down()
            store.driver.cleanup()
    store.layer_store = cast("LayerStore", _CLOSED)
    store.image_store = cast("ImageStore", _CLOSED)
    store.container_store = cast("ContainerStore", _CLOSED)
    store.driver = cast("GraphDriver", _CLOSED)
    store.rw_image_stores = []
    store.ro_layer_stores = []
    store.ro_image_stores = []


class PipeReader(io.RawIOBase):
    """A readable file fed by ``produce(writer)`` running in a thread, through a pipe.

    ``produce`` runs under whatever locks it takes for as long as the reader has not read
    to the end or closed the file. If it fails, the read that reaches the end raises its
    error, so a truncated stream is never mistaken for a whole one. Closing early stops it.
    """

    def __init__(self, produce: Callable[[BinaryIO], None], name: str = "cs-core-pipe") -> None:
        super().__init__()
        self._fd, write_fd = os.pipe2(os.O_CLOEXEC)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(produce, write_fd), name=name,
                                        daemon=True)
        self._thread.start()

    def _run(self, produce: Callable[[BinaryIO], None], write_fd: int) -> None:
        try:
            with open(write_fd, "wb", buffering=1 << 16) as writer:
                produce(writer)
        except BrokenPipeError:
            pass  # the reader closed the file: it wants no more
        except BaseException as exc:
            self._error = exc

    def readable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._fd

    def readinto(self, b: Any) -> int:
        n = os.readv(self._fd, [b])
        if n == 0:
            self._thread.join()
            if self._error is not None:
                error, self._error = self._error, None
                raise error
        return n

    def close(self) -> None:
        if not self.closed:
            os.close(self._fd)
            self._thread.join()
        super().close()


def diff_reader(store: StoreContext, from_: str | None, to: str,
                compression: Any = None) -> BinaryIO:
    """``store.diff`` as a readable file (see :meth:`cs_core.store.Store.diff_reader`)."""
    layers.layer(store, to)  # an unknown layer fails here, not at the first read
    reader = PipeReader(lambda out: content.diff(store, from_, to, out, compression, None),
                        name="cs-core-diff")
    return cast(BinaryIO, io.BufferedReader(reader, 1 << 20))


def read_chunks(f: BinaryIO, size: int = 1 << 20) -> Iterator[bytes]:
    """Iterate over ``f`` in chunks of at most ``size`` bytes, closing it at the end."""
    with contextlib.closing(f):
        while chunk := f.read(size):
            yield chunk
