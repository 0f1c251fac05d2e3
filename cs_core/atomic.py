"""Durable file operations: every bookkeeping write goes through here.

A write is: a temp file in the same directory, the data, fsync of the file, rename over the
target, fsync of the directory. After a crash the target holds either the old or the new
bytes, never a mix; after the call returns, the new bytes survive a power cut. A layer's many
files are flushed instead by one ``syncfs`` of their filesystem (the second half).
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, TypeVar

from cs_core import lazylog
from cs_core.walk import remove_tree as remove_tree  # re-exported: callers import it from here

if TYPE_CHECKING:
    import ctypes

log = lazylog.getLogger(__name__)
T = TypeVar("T")

# -- the space reserve -------------------------------------------------------------------------
#
# Every bookkeeping write makes a new file before the old one goes away, so on a full disk even
# a delete, which would free space, cannot record that it happened: the user is stuck. Each
# store keeps a small preallocated file in its graph root; a write that hits ENOSPC deletes it
# (on the same filesystem) and retries once. A failed create frees what it wrote, so a delete
# that follows still finds room. The reserve is re-made when a store is opened with room.

RESERVE_NAME = ".cs-space-reserve"
RESERVE_SIZE = 1 << 20
_reserves: dict[int, Path] = {}
_reserves_lock = threading.Lock()


def keep_space_reserve(directory: str | os.PathLike[str]) -> None:
    """Make sure ``directory`` holds a space reserve (best effort; quiet when there is no room)."""
    path = Path(directory) / RESERVE_NAME
    try:
        dev = os.stat(directory).st_dev
        try:
            if os.stat(path).st_size >= RESERVE_SIZE:
                with _reserves_lock:
                    _reserves[dev] = path
                return
        except FileNotFoundError:
            pass
        fd = os.open(path, WRITE_FLAGS, 0o600)
        try:
            os.posix_fallocate(fd, 0, RESERVE_SIZE)
        finally:
            os.close(fd)
    except OSError as exc:
        with contextlib.suppress(OSError):
            if os.stat(path).st_size < RESERVE_SIZE:
                os.unlink(path)  # a partial reserve only hides space
        log.debug("no space reserve in %s: %s", directory, exc)
        return
    with _reserves_lock:
        _reserves[dev] = path


def release_space_reserve(near: str | os.PathLike[str]) -> bool:
    """Delete the reserve on ``near``'s filesystem; True if that freed something."""
    try:
        dev = os.stat(near).st_dev
    except OSError:
        return False
    with _reserves_lock:
        path = _reserves.pop(dev, None)
    if path is None:
        return False
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False  # another process used it first; its space is already free
    log.warning("filesystem of %s is full: used the space reserve %s", near, path)
    return True


#: Opening a file the store writes: never through a symlink (someone else may have planted
#: one where our file goes), never inherited by a child process.
WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC


def write_in_place(path: str | os.PathLike[str], data: bytes, mode: int = 0o600) -> None:
    """Create or overwrite ``path`` with ``data``, not atomically, never through a symlink.

    For small files whose readers cope with a torn write (probe results, link names that
    are re-created when wrong); records go through ``write_file``.
    """
    fd = os.open(path, WRITE_FLAGS | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Make a directory's entries (creations, renames, removals) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_file(
    path: str | os.PathLike[str], data: bytes, mode: int = 0o600, *, durable: bool = True,
    sync_dir: bool = True,
) -> None:
    """Atomically replace ``path`` with ``data``.

    ``durable=False`` skips the fsyncs, as Go does for volatile (transient) records, which
    are allowed to vanish on reboot. ``sync_dir=False`` keeps the data fsync (the file is
    never torn) but leaves the rename to the directory's next fsync or ``syncfs``.
    """
    target = Path(path)
    try:
        _write_once(target, data, mode, durable)
    except OSError as exc:
        if not is_no_space(exc) or not release_space_reserve(target.parent):
            if is_no_space(exc) and not exc.filename:
                raise OSError(exc.errno, exc.strerror, str(target)) from exc
            raise
        _write_once(target, data, mode, durable)
    if durable and sync_dir:
        fsync_dir(target.parent)


def _unused_name(directory: Path, prefix: str, make: Callable[[Path], T]) -> T:
    """``make(<directory>/<prefix><random>)`` for the first name it does not find taken."""
    for _ in range(100):
        try:
            return make(directory / f"{prefix}{os.urandom(6).hex()}")
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no unused temporary name", str(directory))


def _create_temp(directory: Path, prefix: str) -> tuple[int, Path]:
    """A new file ``<prefix><random>`` in ``directory``, opened for writing, mode 0600: what
    ``tempfile.mkstemp`` makes, without importing tempfile (and with it shutil, random, bz2
    and lzma: ~3 ms of every command's start-up, since this module is always loaded)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    return _unused_name(directory, prefix, lambda path: (os.open(path, flags, 0o600), path))


def make_temp_dir(parent: Path, prefix: str = "") -> Path:
    """A new, empty directory ``<prefix><random>`` in ``parent``, mode 0700: ``tempfile.mkdtemp``
    without the import (see ``_create_temp``)."""

    def make(path: Path) -> Path:
        os.mkdir(path, 0o700)
        return path

    return _unused_name(parent, prefix, make)


def _write_once(target: Path, data: bytes, mode: int, durable: bool) -> None:
    fd, tmp = _create_temp(target.parent, f".tmp-{target.name}")
    try:
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), mode)
            out.write(data)
            out.flush()
            if durable:
                os.fsync(out.fileno())
        os.rename(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_writer(
    path: str | os.PathLike[str], mode: int = 0o600, *, durable: bool = True,
    tmp_dir: str | os.PathLike[str] | None = None,
) -> Iterator[BinaryIO]:
    """Stream into a temp file that replaces ``path`` only if the block completes.

    ``tmp_dir`` (on the same filesystem) holds the temp file instead of ``path``'s directory:
    one that whoever cleans up after a killed writer removes anyway.
    """
    target = Path(path)
    fd, tmp_path = _create_temp(Path(tmp_dir) if tmp_dir else target.parent, f".tmp-{target.name}")
    tmp = os.fdopen(fd, "wb")
    try:
        os.fchmod(tmp.fileno(), mode)
        yield tmp
        tmp.flush()
        if durable:
            os.fsync(tmp.fileno())
        tmp.close()
        os.rename(tmp_path, target)
    except BaseException:
        tmp.close()
        with contextlib.suppress(OSError):
            os.unlink(tmp_path)
        raise
    if durable:
        fsync_dir(target.parent)


def makedirs_durable(path: str | os.PathLike[str], mode: int = 0o700) -> None:
    """``mkdir -p`` whose new directories survive a power cut.

    An fsync of a file makes its entry in its directory durable, not that directory's own
    entry in *its* parent: a big-data file written into a fresh ``<id>/`` directory could
    vanish with the directory. So each directory we create gets its parent fsynced.
    """
    target = Path(path)
    missing: list[Path] = []
    while not target.is_dir():
        missing.append(target)
        if target.parent == target:
            break
        target = target.parent
    for directory in reversed(missing):
        try:
            os.mkdir(directory, mode)
        except FileExistsError:
            continue
        fsync_dir(directory.parent)


def makedirs(path: str | os.PathLike[str], mode: int = 0o700) -> None:
    """``mkdir -p`` that leaves existing directories' modes alone."""
    os.makedirs(path, mode=mode, exist_ok=True)


def is_no_space(exc: OSError) -> bool:
    return exc.errno in (errno.ENOSPC, errno.EDQUOT)


# -- whole-filesystem flushes -------------------------------------------------------------------
#
# An applied layer can hold tens of thousands of files; fsyncing each would make applies
# several times slower. ``syncfs(2)`` on the layer's filesystem flushes them all in one call,
# before the record that makes the layer visible is written. That ordering (data, then the
# record that refers to it) is what makes an acknowledged operation survive a power cut.

_libc_handle: ctypes.CDLL | None = None


def _libc() -> ctypes.CDLL:
    """The C library the interpreter already has loaded (CDLL(None); find_library would run
    ldconfig), loaded on the first flush: ctypes costs ~1.2 ms that reading commands skip."""
    global _libc_handle
    if _libc_handle is None:
        import ctypes

        _libc_handle = ctypes.CDLL(None, use_errno=True)
    return _libc_handle


def syncfs(path: str | os.PathLike[str]) -> None:
    """Flush every dirty page and inode of the filesystem holding ``path``."""
    fd = os.open(Path(path), os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc().syncfs(fd) != 0:
            import ctypes

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
    import ctypes

    _libc().sync_file_range(fd, ctypes.c_int64(0), ctypes.c_int64(0), ctypes.c_uint(_SYNC_FILE_RANGE_WRITE))


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
