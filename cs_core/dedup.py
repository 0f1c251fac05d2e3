"""Share the extents of identical files between layer directories (Go ``pkg/dedup``).

Files are grouped by a cheap key (size, CRC32 or SHA-256 of the content); within a group every
file is offered to the kernel's FIDEDUPERANGE against the group's first file.  The kernel
compares the bytes itself and only shares ranges that are equal, so even the ``size`` method
cannot corrupt data: a weaker key merely wastes comparisons.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import stat
import struct
import zlib
from collections.abc import Iterable, Iterator
from enum import Enum
from pathlib import Path

from cs_core import walk
from cs_core.errors import StorageError

FIDEDUPERANGE = 0xC0189436
_RANGE = struct.Struct("=QQHHI")  # struct file_dedupe_range (header)
_INFO = struct.Struct("=qQQiI")  # struct file_dedupe_range_info
_SAME = 0
# btrfs refuses (or silently shortens) longer requests; stepping in 16 MiB is portable.
_CHUNK = 16 * 1024 * 1024
# The filesystem (or kernel) cannot dedupe: report nothing shared rather than fail.
_UNSUPPORTED = {errno.EOPNOTSUPP, errno.ENOTTY, errno.EINVAL, errno.EXDEV, errno.ENOSYS}


class HashMethod(Enum):
    CRC = "crc"
    SIZE = "size"
    SHA256 = "sha256"

    @classmethod
    def parse(cls, text: str) -> HashMethod:
        aliases = {"sha256sum": cls.SHA256}
        if text in aliases:
            return aliases[text]
        try:
            return cls(text)
        except ValueError:
            raise StorageError(f"unknown hash method {text!r}") from None


class _Unsupported(Exception):
    """The filesystem does not implement FIDEDUPERANGE."""


class _File:
    """A regular file found under one of the roots, reopened by ``rel`` (never by a path the
    kernel would resolve whole: no symlink is followed, no depth limit)."""

    __slots__ = ("rel", "root", "st")

    def __init__(self, root: Path, rel: str, st: os.stat_result) -> None:
        self.root, self.rel, self.st = root, rel, st

    def open(self) -> int:
        fd = walk.open_beneath(self.root, self.rel, os.O_RDONLY)
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) != (self.st.st_dev, self.st.st_ino):
            os.close(fd)  # replaced since the walk: not the file we grouped
            raise _Changed()
        return fd


class _Changed(Exception):
    """A file was replaced between the walk and its use."""


def _regular_files(roots: Iterable[Path]) -> Iterator[_File]:
    for root in roots:
        for d in walk.walk(root):
            for entry in d.entries:
                if not entry.is_file(follow_symlinks=False):
                    continue
                st = entry.stat(follow_symlinks=False)
                if stat.S_ISREG(st.st_mode) and st.st_size > 0:
                    yield _File(root, d.join(entry.name), st)


def _content_key(file: _File, method: HashMethod) -> tuple[int, str | int]:
    size = file.st.st_size
    if method is HashMethod.SIZE:
        return size, 0
    with os.fdopen(file.open(), "rb") as f:
        if method is HashMethod.CRC:
            crc = 0
            while chunk := f.read(1 << 20):
                crc = zlib.crc32(chunk, crc)
            return size, crc
        return size, hashlib.file_digest(f, "sha256").hexdigest()


def _dedupe_pair(src: _File, dest: _File, size: int) -> int:
    """Share ``dest``'s extents with ``src``; return the bytes the kernel deduplicated."""
    shared = 0
    src_fd = src.open()
    try:
        dest_fd = dest.open()
        try:
            offset = 0
            while offset < size:
                length = min(_CHUNK, size - offset)
                request = bytearray(_RANGE.pack(offset, length, 1, 0, 0) +
                                    _INFO.pack(dest_fd, offset, 0, 0, 0))
                try:
                    fcntl.ioctl(src_fd, FIDEDUPERANGE, request)
                except OSError as exc:
                    if exc.errno in _UNSUPPORTED:
                        raise _Unsupported() from None
                    raise
                _fd, _off, done, status, _res = _INFO.unpack_from(request, _RANGE.size)
                if status < 0 and -status in _UNSUPPORTED:
                    raise _Unsupported()
                if status != _SAME or done == 0:
                    break  # contents differ (a weak key collided) or the kernel gave up
                shared += done
                offset += done
        finally:
            os.close(dest_fd)
    finally:
        os.close(src_fd)
    return shared


def dedup_dirs(roots: Iterable[Path], method: HashMethod) -> int:
    """Deduplicate identical regular files under ``roots``; return the bytes shared."""
    by_size: dict[int, list[_File]] = {}
    for file in _regular_files(roots):
        by_size.setdefault(file.st.st_size, []).append(file)
    total = 0
    for size, candidates in by_size.items():
        if len(candidates) < 2:
            continue
        groups: dict[tuple[int, str | int], list[_File]] = {}
        for file in candidates:
            try:
                groups.setdefault(_content_key(file, method), []).append(file)
            except (_Changed, FileNotFoundError):
                continue
        for members in groups.values():
            src = members[0]
            seen = {(src.st.st_dev, src.st.st_ino)}
            for dest in members[1:]:
                inode = (dest.st.st_dev, dest.st.st_ino)
                if inode in seen:  # hard links already share everything
                    continue
                seen.add(inode)
                try:
                    total += _dedupe_pair(src, dest, size)
                except (_Changed, FileNotFoundError):
                    continue
                except _Unsupported:
                    return total
    return total
