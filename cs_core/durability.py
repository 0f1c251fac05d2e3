"""Flushing a whole filesystem once per operation instead of fsyncing every file.

An applied layer can hold tens of thousands of files; fsyncing each would make applies
several times slower. ``syncfs(2)`` on the layer's filesystem flushes them all in one call,
before the record that makes the layer visible is written. That ordering (data, then the
record that refers to it) is what makes an acknowledged operation survive a power cut.
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

# CDLL(None): the C library the interpreter already has loaded; find_library would run ldconfig.
_libc = ctypes.CDLL(None, use_errno=True)


def syncfs(path: str | os.PathLike[str]) -> None:
    """Flush every dirty page and inode of the filesystem holding ``path``."""
    fd = os.open(Path(path), os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc.syncfs(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), str(path))
    finally:
        os.close(fd)


_SYNC_FILE_RANGE_WRITE = 2
#: Files at least this big have their writeback started as soon as they are written.
WRITEBACK_MIN = 1 << 20


def start_writeback(fd: int) -> None:
    """Start writing ``fd``'s dirty pages to disk now, without waiting for them (best effort).

    The store's ``syncfs`` before a layer is marked complete must wait for every byte to reach
    the disk; kicking off big files' writeback while the rest of the layer is still being
    extracted overlaps that I/O with the extraction instead of leaving it all for the end.
    """
    _libc.sync_file_range(fd, ctypes.c_int64(0), ctypes.c_int64(0), ctypes.c_uint(_SYNC_FILE_RANGE_WRITE))
