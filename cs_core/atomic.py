"""Durable file operations: every bookkeeping write goes through here.

A write is: a temp file in the same directory, the data, fsync of the file, rename over the
target, fsync of the directory. After a crash the target holds either the old or the new
bytes, never a mix; after the call returns, the new bytes survive a power cut.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Make a directory's entries (creations, renames, removals) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_file(
    path: str | os.PathLike[str], data: bytes, mode: int = 0o600, *, durable: bool = True
) -> None:
    """Atomically replace ``path`` with ``data``.

    ``durable=False`` skips the fsyncs, as Go does for volatile (transient) records, which
    are allowed to vanish on reboot.
    """
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".tmp-{target.name}", dir=target.parent)
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
    if durable:
        fsync_dir(target.parent)


@contextlib.contextmanager
def atomic_writer(
    path: str | os.PathLike[str], mode: int = 0o600, *, durable: bool = True
) -> Iterator[tempfile._TemporaryFileWrapper[bytes]]:
    """Stream into a temp file that replaces ``path`` only if the block completes."""
    target = Path(path)
    tmp = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed below
        prefix=f".tmp-{target.name}", dir=target.parent, delete=False
    )
    try:
        os.fchmod(tmp.fileno(), mode)
        yield tmp
        tmp.flush()
        if durable:
            os.fsync(tmp.fileno())
        tmp.close()
        os.rename(tmp.name, target)
    except BaseException:
        tmp.close()
        with contextlib.suppress(OSError):
            os.unlink(tmp.name)
        raise
    if durable:
        fsync_dir(target.parent)


def makedirs(path: str | os.PathLike[str], mode: int = 0o700) -> None:
    """``mkdir -p`` that leaves existing directories' modes alone."""
    os.makedirs(path, mode=mode, exist_ok=True)


def remove_tree(path: str | os.PathLike[str]) -> None:
    """Remove a file or directory tree; a missing path is not an error.

    Immutable/append-only attributes and read-only directories (layers are often 0555) are
    handled by making directories writable as we go.
    """
    import shutil

    def onerror(func: object, p: str, exc_info: tuple[type, BaseException, object]) -> None:
        exc = exc_info[1]
        if isinstance(exc, FileNotFoundError):
            return
        if isinstance(exc, PermissionError):
            parent = os.path.dirname(p)
            with contextlib.suppress(OSError):
                os.chmod(parent, 0o700)
            with contextlib.suppress(OSError):
                os.chmod(p, 0o700)
            if os.path.isdir(p) and not os.path.islink(p):
                shutil.rmtree(p, onerror=onerror)
            else:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(p)
            return
        raise exc

    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    import stat as _stat

    if _stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path, onerror=onerror)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def is_no_space(exc: OSError) -> bool:
    return exc.errno in (errno.ENOSPC, errno.EDQUOT)
