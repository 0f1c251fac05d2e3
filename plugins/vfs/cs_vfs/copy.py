"""Copying a layer tree the way Go's ``drivers/copy`` does, as fast as the filesystem allows.

Regular files are cloned with the FICLONE ioctl (btrfs, XFS: instant, shared extents); where
that fails, data ranges found with SEEK_DATA/SEEK_HOLE are copied with copy_file_range, so
sparse files keep their holes. Hard links within the tree stay hard links; symlinks, FIFOs,
sockets and device nodes are recreated; owners, modes, xattrs and nanosecond times are kept,
directory times last (writing into a directory changes its mtime).
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
from pathlib import Path

FICLONE = 0x40049409
_CHUNK = 1 << 30


def _copy_data(src_fd: int, dst_fd: int, size: int) -> None:
    try:
        fcntl.ioctl(dst_fd, FICLONE, src_fd)
        return
    except OSError as exc:
        if exc.errno not in (errno.EOPNOTSUPP, errno.EXDEV, errno.EINVAL, errno.ENOTTY, errno.EPERM):
            raise
    offset = 0
    while offset < size:
        try:
            start = os.lseek(src_fd, offset, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # only a hole remains
                break
            raise
        end = os.lseek(src_fd, start, os.SEEK_HOLE)
        pos = start
        while pos < end:
            try:
                n = os.copy_file_range(src_fd, dst_fd, min(end - pos, _CHUNK), pos, pos)
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL):
                    raise
                n = _plain_copy(src_fd, dst_fd, pos, end - pos)
            if n == 0:
                break
            pos += n
        offset = end
    os.ftruncate(dst_fd, size)


def _plain_copy(src_fd: int, dst_fd: int, pos: int, length: int) -> int:
    data = os.pread(src_fd, min(length, 1 << 20), pos)
    os.pwrite(dst_fd, data, pos)
    return len(data)


def _copy_xattrs(src: str, dst: str) -> None:
    try:
        names = os.listxattr(src, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            return
        raise
    for name in names:
        try:
            os.setxattr(dst, name, os.getxattr(src, name, follow_symlinks=False),
                        follow_symlinks=False)
        except OSError as exc:
            # security.selinux and friends may be refused; Go ignores ENOTSUP/EPERM too.
            if exc.errno not in (errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM):
                raise


def _copy_meta(src: str, dst: str, st: os.stat_result) -> None:
    os.lchown(dst, st.st_uid, st.st_gid)
    _copy_xattrs(src, dst)
    if not stat.S_ISLNK(st.st_mode):
        os.chmod(dst, stat.S_IMODE(st.st_mode))
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def copy_tree(source: Path, target: Path) -> None:
    """Copy ``source`` to the new directory ``target`` with full fidelity."""
    links: dict[tuple[int, int], str] = {}

    def walk(src_dir: str, dst_dir: str) -> None:
        with os.scandir(src_dir) as entries:
            for entry in entries:
                src = entry.path
                dst = os.path.join(dst_dir, entry.name)
                st = entry.stat(follow_symlinks=False)
                mode = st.st_mode
                if stat.S_ISDIR(mode):
                    os.mkdir(dst, 0o700)
                    walk(src, dst)
                    _copy_meta(src, dst, st)  # after its contents: they change its mtime
                    continue
                if st.st_nlink > 1 and not stat.S_ISDIR(mode):
                    key = (st.st_dev, st.st_ino)
                    if key in links:
                        os.link(links[key], dst)
                        continue
                    links[key] = dst
                if stat.S_ISREG(mode):
                    sfd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
                    try:
                        dfd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
                        try:
                            if st.st_size:
                                _copy_data(sfd, dfd, st.st_size)
                        finally:
                            os.close(dfd)
                    finally:
                        os.close(sfd)
                elif stat.S_ISLNK(mode):
                    os.symlink(os.readlink(src), dst)
                elif stat.S_ISFIFO(mode):
                    os.mkfifo(dst, 0o600)
                elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISSOCK(mode):
                    os.mknod(dst, stat.S_IFMT(mode) | 0o600, st.st_rdev)
                _copy_meta(src, dst, st)

    root_st = os.lstat(source)
    os.mkdir(target, 0o700)
    walk(str(source), str(target))
    _copy_meta(str(source), str(target), root_st)
