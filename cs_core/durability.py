"""Flushing a whole filesystem once per operation instead of fsyncing every file.

An applied layer can hold tens of thousands of files; fsyncing each would make applies
several times slower. ``syncfs(2)`` on the layer's filesystem flushes them all in one call,
before the record that makes the layer visible is written. That ordering (data, then the
record that refers to it) is what makes an acknowledged operation survive a power cut.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import threading
from collections.abc import Iterable, Iterator
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


def syncfs_each(paths: Iterable[str | os.PathLike[str]]) -> None:
    """``syncfs`` once for each filesystem holding one of ``paths``."""
    done: set[int] = set()
    for path in paths:
        dev = os.stat(path).st_dev
        if dev not in done:
            done.add(dev)
            syncfs(path)


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


@contextlib.contextmanager
def flushing(path: str | os.PathLike[str], interval: float = 0.25) -> Iterator[None]:
    """Flush ``path``'s filesystem every ``interval`` seconds in a thread while the body runs.

    A layer must be on disk before its record says it is complete, and one ``syncfs`` at the end
    of a big apply waits for everything at once: tens of thousands of inodes and hundreds of
    megabytes. Flushing as the apply goes overlaps that I/O with the extraction, so the final
    ``syncfs`` (still made by the caller: this one is only a head start) finds little left to do.
    """
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(interval):
            try:
                syncfs(path)
            except OSError:
                return  # the caller's own syncfs reports what matters

    worker = threading.Thread(target=loop, name="cs-flush", daemon=True)
    worker.start()
    try:
        yield
    finally:
        stop.set()
        worker.join()


def fsync_paths(paths: Iterable[str | os.PathLike[str]]) -> None:
    """fsync each existing file or directory in ``paths`` (never following a symlink).

    For the few entries an operation made itself (a layer's directories and link files),
    this is what ``syncfs`` would do for them without also waiting for every other process's
    dirty data on the filesystem (a big import beside us).
    """
    for path in paths:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
