"""Escape-proof access to a directory tree through file descriptors.

Every lookup goes through ``openat2(2)`` with ``RESOLVE_IN_ROOT``: symlinks met on the way
(from this layer or a lower one) resolve as if the layer root were ``/``, the way Go's
chroot-based extraction sees them, so nothing can lead outside the root. The final component
of a path is only ever touched with ``*at`` calls that do not follow symlinks.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import stat
from collections import OrderedDict

from cs_core.errors import UnsafeArchive
from cs_core.walk import remove_at as remove_at  # re-exported: callers import it from here

_SYS_OPENAT2 = 437  # same number on x86_64 and aarch64
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10

_libc = ctypes.CDLL(None, use_errno=True)
_syscall = _libc.syscall
_syscall.restype = ctypes.c_long


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


def openat2(dirfd: int, path: str, flags: int, resolve: int = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
            mode: int = 0) -> int:
    """``openat2(2)``; raises OSError like ``os.open``."""
    how = _OpenHow(flags | os.O_CLOEXEC, mode, resolve)
    while True:
        fd = _syscall(_SYS_OPENAT2, dirfd, os.fsencode(path), ctypes.byref(how), ctypes.sizeof(how))
        if fd >= 0:
            return int(fd)
        err = ctypes.get_errno()
        if err not in (errno.EINTR, errno.EAGAIN):
            raise OSError(err, os.strerror(err), path)


_DIR_FLAGS = os.O_PATH | os.O_DIRECTORY


def empty_dir_at(fd: int, keep: frozenset[str] | set[str] = frozenset()) -> None:
    """Remove every entry of the open directory ``fd`` except the names in ``keep``."""
    with os.scandir(fd) as it:
        names = [e.name for e in it]
    for name in names:
        if name not in keep:
            remove_at(fd, name)


class SafeRoot:
    """A directory tree opened once; parents are resolved inside it and their fds cached."""

    _CACHE = 1024

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self._cache: OrderedDict[str, int] = OrderedDict()

    def close(self) -> None:
        self.invalidate()
        os.close(self.fd)

    def invalidate(self) -> None:
        """Forget cached directories (after something that might have been one was removed)."""
        for fd in self._cache.values():
            os.close(fd)
        self._cache.clear()

    def _remember(self, rel: str, fd: int) -> int:
        self._cache[rel] = fd
        if len(self._cache) > self._CACHE:
            _, old = self._cache.popitem(last=False)
            os.close(old)
        return fd

    def dir_fd(self, rel: str, create: bool = False) -> int:
        """An ``O_PATH`` fd of directory ``rel`` (cleaned, relative; "" is the root).

        With ``create``, missing directories are made (mode 0755), as Go's ``MkdirAll`` of a
        missing parent. The fd belongs to the cache: do not close it.
        """
        if not rel:
            return self.fd
        fd = self._cache.get(rel)
        if fd is not None:
            self._cache.move_to_end(rel)
            return fd
        try:
            return self._remember(rel, openat2(self.fd, rel, _DIR_FLAGS))
        except FileNotFoundError:
            if not create:
                raise
        except OSError as exc:
            raise _unsafe(rel, exc) from None
        # Walk up to the deepest existing ancestor, then create downwards (iteratively: a
        # hostile tar may nest thousands of levels).
        parts = rel.split("/")
        have = len(parts) - 1
        while have > 0:
            prefix = "/".join(parts[:have])
            if prefix in self._cache:
                break
            try:
                os.close(openat2(self.fd, prefix, _DIR_FLAGS))
                break
            except FileNotFoundError:
                have -= 1
            except OSError as exc:
                raise _unsafe(prefix, exc) from None
        for i in range(have, len(parts)):
            parent = "/".join(parts[:i])
            pfd = self.dir_fd(parent) if parent else self.fd
            with contextlib.suppress(FileExistsError):  # e.g. a dangling symlink: reported below
                os.mkdir(parts[i], 0o755, dir_fd=pfd)
            try:
                self.dir_fd("/".join(parts[: i + 1]))
            except OSError as exc:
                raise _unsafe("/".join(parts[: i + 1]), exc) from None
        return self._cache[rel]


def _unsafe(rel: str, exc: OSError) -> UnsafeArchive:
    return UnsafeArchive(f"resolving {rel!r} inside the layer: {exc.strerror}")


# No symlink at all on the way: a name recorded for a regular file never legitimately goes
# through one, and resolving it even inside the root could land on another layer's content.
RESOLVE_STRICT = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS


def open_regular(dirfd: int, rel: str, resolve: int = RESOLVE_STRICT) -> tuple[int, os.stat_result]:
    """Open regular file ``rel`` beneath ``dirfd`` for reading; returns the fd and its ``fstat``.

    The name is first opened ``O_PATH`` (no side effect, even on a device node or FIFO), checked
    to be a regular file, and only then reopened for reading through that same inode, so what is
    read is exactly what was checked. Raises ``UnsafeArchive`` for anything but a regular file.
    """
    pfd = openat2(dirfd, rel, os.O_PATH | os.O_NOFOLLOW, resolve)
    try:
        st = os.fstat(pfd)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafeArchive(f"{rel!r} inside the layer is not a regular file")
        fd = os.open(f"/proc/self/fd/{pfd}", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(pfd)
    return fd, st
