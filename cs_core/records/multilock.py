"""Several lock files held as one, for a record store whose files live in several stores.

With a split image store, the layer store keeps read-only layers in the image store's
``<driver>-layers/layers.json``. A process that opens that image store as its own graph root
locks only the lock beside it, so we must hold both (Go HEAD's ``multipleLockFile``).
"""

from __future__ import annotations

from collections.abc import Sequence

from cs_core.lockfile import LockContexts, LockFile


class LockGroup(LockContexts):
    """The subset of :class:`LockFile` that record stores use, over several lock files.

    Locks are taken in the given order and released in reverse, so two groups sharing a
    prefix cannot deadlock. The first lock's token stands for the group, as in Go: every
    write records a token on all of them, and a reader that uses only one of the files (the
    image store opened on its own) watches the lock beside that file.
    """

    def __init__(self, locks: Sequence[LockFile]) -> None:
        if not locks:
            raise ValueError("a lock group needs at least one lock")
        self.locks = list(locks)
        self.path = self.locks[0].path
        self.read_only = self.locks[0].read_only

    def lock(self) -> None:
        self._acquire(exclusive=True)

    def rlock(self) -> None:
        self._acquire(exclusive=False)

    def _acquire(self, *, exclusive: bool) -> None:
        taken: list[LockFile] = []
        try:
            for lock in self.locks:
                lock.lock() if exclusive else lock.rlock()
                taken.append(lock)
        except BaseException:
            for lock in reversed(taken):
                lock.unlock()
            raise

    def unlock(self) -> None:
        for lock in reversed(self.locks):
            lock.unlock()

    @property
    def locked_for_writing(self) -> bool:
        return all(lock.locked_for_writing for lock in self.locks)

    @property
    def locked(self) -> bool:
        return all(lock.locked for lock in self.locks)

    def read_token(self) -> bytes:
        return self.locks[0].read_token()

    def record_write(self) -> bytes:
        tokens = [lock.record_write() for lock in self.locks]
        return tokens[0]
