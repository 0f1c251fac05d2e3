"""Inter-process locks shared with Go processes (``pkg/lockfile`` of containers/storage).

POSIX record locks (``fcntl`` ``F_SETLKW``, whole file) on the same files Go uses, plus the
64-byte "last writer" token at offset 0 that tells every process whether to reload.

POSIX locks belong to the (process, file) pair and are dropped when *any* descriptor of the
file is closed, so there is exactly one ``LockFile`` object per path per process (``get``), and
it keeps one descriptor open for as long as any holder in this process has the lock. Holds are
counted, so nested acquisitions within one process are cheap, as in Go.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import os
import struct
import threading
import time
from collections.abc import Iterator
from typing import Self

TOKEN_SIZE = 64

_counter = itertools.count(1)
_registry: dict[tuple[str, bool], LockFile] = {}
_registry_lock = threading.Lock()


def new_token() -> bytes:
    """A token unique across processes and time: time, counter, PID, random (Go layout)."""
    head = struct.pack("<QQI", time.time_ns() & (2**64 - 1), next(_counter), os.getpid())
    # os.urandom is what secrets.token_bytes returns, without importing secrets (and hmac,
    # hashlib and OpenSSL's loading with it) into every CLI process.
    return head + os.urandom(TOKEN_SIZE - len(head))


def get(path: str | os.PathLike[str], *, read_only: bool = False) -> LockFile:
    """The process-wide lock object for ``path`` (created on first use)."""
    key = (os.path.abspath(path), read_only)
    with _registry_lock:
        lock = _registry.get(key)
        if lock is None:
            lock = _registry[key] = LockFile(key[0], read_only=read_only)
        return lock


class LockContexts:
    """``with lock.write_locked():`` / ``read_locked()`` for anything with lock, rlock, unlock."""

    def lock(self) -> None:
        raise NotImplementedError

    def rlock(self) -> None:
        raise NotImplementedError

    def unlock(self) -> None:
        raise NotImplementedError

    @contextlib.contextmanager
    def write_locked(self) -> Iterator[Self]:
        self.lock()
        try:
            yield self
        finally:
            self.unlock()

    @contextlib.contextmanager
    def read_locked(self) -> Iterator[Self]:
        self.rlock()
        try:
            yield self
        finally:
            self.unlock()


class LockFile(LockContexts):
    """A reader/writer lock on one file, counted per process. Use ``get`` to obtain one."""

    def __init__(self, path: str, *, read_only: bool = False) -> None:
        self.path = path
        self.read_only = read_only
        self._fd: int | None = None
        self._holds = 0
        self._exclusive = False
        self._state = threading.Lock()
        # In-process reader/writer exclusion: fcntl locks do not exclude our own threads.
        self._threads = threading.Condition(threading.Lock())
        self._thread_readers = 0
        self._thread_writer = False
        # Probe now so a missing directory or permission problem shows up at open time.
        fd = self._open()
        os.close(fd)

    # -- acquisition -------------------------------------------------------------------------

    def _open(self) -> int:
        # O_NOFOLLOW: a symlink planted at a lock path would have the token written through it.
        flags = os.O_CLOEXEC | os.O_CREAT | os.O_NOFOLLOW | (os.O_RDONLY if self.read_only else os.O_RDWR)
        try:
            return os.open(self.path, flags, 0o644)
        except FileNotFoundError:
            os.makedirs(os.path.dirname(self.path), mode=0o700, exist_ok=True)
            return os.open(self.path, flags, 0o644)

    def _lock(self, exclusive: bool) -> None:
        with self._threads:
            if exclusive:
                while self._thread_writer or self._thread_readers:
                    self._threads.wait()
                self._thread_writer = True
            else:
                while self._thread_writer:
                    self._threads.wait()
                self._thread_readers += 1
        try:
            with self._state:
                if self._holds == 0:
                    self._fd = self._open()
                    kind = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
                    # lockf() in CPython is fcntl(F_SETLKW) with a whole-file struct flock:
                    # the same lock Go takes, so the two interoperate.
                    while True:
                        try:
                            fcntl.lockf(self._fd, kind)
                            break
                        except InterruptedError:
                            continue
                        except OSError:
                            time.sleep(0.01)
                self._holds += 1
                self._exclusive = exclusive
        except BaseException:
            self._release_thread(exclusive)
            raise

    def _release_thread(self, exclusive: bool) -> None:
        with self._threads:
            if exclusive:
                self._thread_writer = False
            else:
                self._thread_readers -= 1
            self._threads.notify_all()

    def lock(self) -> None:
        """Take the lock exclusively (for writing)."""
        if self.read_only:
            raise PermissionError(f"can't take write lock on read-only lock file {self.path}")
        self._lock(True)

    def rlock(self) -> None:
        """Take the lock shared (for reading)."""
        self._lock(False)

    def unlock(self) -> None:
        with self._state:
            if self._holds <= 0:
                raise RuntimeError(f"lock {self.path!r} has been unlocked too often")
            self._holds -= 1
            exclusive = self._exclusive
            if self._holds == 0:
                assert self._fd is not None
                os.close(self._fd)  # closing releases the fcntl lock
                self._fd = None
        self._release_thread(exclusive)

    def try_lock(self) -> bool:
        """Take the lock exclusively if nobody holds it; never blocks (stale temp-dir checks)."""
        with self._state:
            if self._holds:
                return False
            fd = self._open()
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                return False
            self._fd = fd
            self._holds = 1
            self._exclusive = True
        with self._threads:
            self._thread_writer = True
        return True

    @property
    def locked_for_writing(self) -> bool:
        return self._holds > 0 and self._exclusive

    @property
    def locked(self) -> bool:
        return self._holds > 0

    # -- last-writer token -------------------------------------------------------------------

    def read_token(self) -> bytes:
        """The token currently in the file (caller holds the lock)."""
        if self._fd is None:
            raise RuntimeError(f"reading the token of {self.path} without holding the lock")
        return os.pread(self._fd, TOKEN_SIZE, 0)

    def record_write(self) -> bytes:
        """Write a fresh token, announcing a change to every other process.

        Called while holding the write lock and *before* the data is written, so that a crash
        between the two still makes other processes reload.
        """
        if self._fd is None or not self._exclusive:
            raise RuntimeError(f"recording a write on {self.path} without the write lock")
        token = new_token()
        try:
            written = os.pwrite(self._fd, token, 0)
        except OSError as exc:
            from cs_core.atomic import is_no_space, release_space_reserve

            # A never-written lock file needs a block for its first token: on a full disk,
            # use the store's space reserve (see cs_core.atomic) so deletes still work.
            if not is_no_space(exc) or not release_space_reserve(self.path):
                raise
            written = os.pwrite(self._fd, token, 0)
        if written != len(token):
            raise OSError(28, "No space left on device", self.path)
        return token

    # -- whole-file content (files that are not token-bearing lock files) ----------------------

    def read_content(self) -> bytes:
        """The whole file, read through the locked descriptor (caller holds the lock).

        Opening the file again and closing that descriptor would drop this process's lock:
        files whose content belongs to the lock holder (intent notes) go through here.
        """
        if self._fd is None:
            raise RuntimeError(f"reading {self.path} without holding the lock")
        size = os.fstat(self._fd).st_size
        return os.pread(self._fd, size, 0) if size else b""

    def write_content(self, data: bytes) -> None:
        """Replace the whole file through the locked descriptor (caller holds the write lock)."""
        if self._fd is None or not self._exclusive:
            raise RuntimeError(f"writing {self.path} without the write lock")
        os.ftruncate(self._fd, 0)
        if os.pwrite(self._fd, data, 0) != len(data):
            raise OSError(28, "No space left on device", self.path)

    def modified_since(self, token: bytes) -> tuple[bool, bytes]:
        """Whether the file's token differs from ``token``; also returns the current one."""
        current = self.read_token()
        return current != token, current
