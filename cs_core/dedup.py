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


def _regular_files(roots: Iterable[Path]) -> Iterator[tuple[Path, os.stat_result]]:
    for root in roots:
        for dirpath, _dirs, files in os.walk(root):
            for name in files:
                path = Path(dirpath, name)
                st = path.lstat()
                if stat.S_ISREG(st.st_mode) and st.st_size > 0:
                    yield path, st


def _content_key(path: Path, size: int, method: HashMethod) -> tuple[int, str | int]:
    if method is HashMethod.SIZE:
        return size, 0
    with open(path, "rb") as f:
        if method is HashMethod.CRC:
            crc = 0
            while chunk := f.read(1 << 20):
                crc = zlib.crc32(chunk, crc)
            return size, crc
        return size, hashlib.file_digest(f, "sha256").hexdigest()


def _dedupe_pair(src: Path, dest: Path, size: int) -> int:
    """Share ``dest``'s extents with ``src``; return the bytes the kernel deduplicated."""
    shared = 0
    src_fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        dest_fd = os.open(dest, os.O_RDONLY | os.O_NOFOLLOW)
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
    by_size: dict[int, list[tuple[Path, os.stat_result]]] = {}
    for path, st in _regular_files(roots):
        by_size.setdefault(st.st_size, []).append((path, st))
    total = 0
    for size, candidates in by_size.items():
        if len(candidates) < 2:
            continue
        groups: dict[tuple[int, str | int], list[tuple[Path, os.stat_result]]] = {}
        for path, st in candidates:
            groups.setdefault(_content_key(path, size, method), []).append((path, st))
        for members in groups.values():
            src, src_st = members[0]
            seen = {(src_st.st_dev, src_st.st_ino)}
            for dest, st in members[1:]:
                inode = (st.st_dev, st.st_ino)
                if inode in seen:  # hard links already share everything
                    continue
                seen.add(inode)
                try:
                    total += _dedupe_pair(src, dest, size)
                except _Unsupported:
                    return total
    return total
