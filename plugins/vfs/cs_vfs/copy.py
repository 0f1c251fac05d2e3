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
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_CLONE_UNSUPPORTED = (errno.EOPNOTSUPP, errno.EXDEV, errno.EINVAL, errno.ENOTTY, errno.EPERM)
_NO_XATTRS = (errno.ENOTSUP, errno.EOPNOTSUPP)


class _Copier:
    """One tree copy. Entries are reached relative to their directory's fd, so each file costs
    one path-component lookup, not a walk from the root."""

    def __init__(self) -> None:
        self.links: dict[tuple[int, int], str] = {}
        # After the first refusal the target cannot clone: stop paying for the attempt
        # (an exception per file is a large part of a small file's cost in Python). A
        # file-specific refusal (btrfs nodatasum vs datasum) costs the rest only speed:
        # copy_file_range still shares extents where the filesystem can.
        self.try_clone = True

    # -- data ------------------------------------------------------------------------------

    def copy_data(self, src_fd: int, dst_fd: int, st: os.stat_result) -> None:
        if self.try_clone:
            try:
                fcntl.ioctl(dst_fd, FICLONE, src_fd)
                return
            except OSError as exc:
                if exc.errno not in _CLONE_UNSUPPORTED:
                    raise
                self.try_clone = False
        size = st.st_size
        if st.st_blocks * 512 >= size:
            # Fully allocated: no holes to look for. (Compressed or inline files may look
            # sparse; they only take the slower, equally correct path below.)
            _copy_range(src_fd, dst_fd, 0, size)
            return
        offset = 0
        while offset < size:
            try:
                start = os.lseek(src_fd, offset, os.SEEK_DATA)
            except OSError as exc:
                if exc.errno == errno.ENXIO:  # only a hole remains
                    break
                raise
            end = os.lseek(src_fd, start, os.SEEK_HOLE)
            _copy_range(src_fd, dst_fd, start, end)
            offset = end
        os.ftruncate(dst_fd, size)

    # -- tree ------------------------------------------------------------------------------

    def copy(self, source: str, target: str) -> None:
        # Iterative, two directory fds open at a time whatever the depth (hostile layers can
        # nest thousands of levels; the soft fd limit is often 1024). Directory modes and
        # times are set last: a read-only directory must still receive its entries, and
        # creating them changes its mtime.
        pending: list[tuple[str, str, os.stat_result]] = [(source, target, os.lstat(source))]
        finished: list[tuple[str, os.stat_result]] = []
        while pending:
            src_path, dst_path, st = pending.pop()
            src_dir = os.open(src_path, _DIR_FLAGS)
            try:
                dst_dir = os.open(dst_path, _DIR_FLAGS)
                try:
                    os.fchown(dst_dir, st.st_uid, st.st_gid)
                    _copy_xattrs(src_dir, dst_dir)
                    pending += self.copy_entries(src_dir, dst_dir, src_path, dst_path)
                finally:
                    os.close(dst_dir)
            finally:
                os.close(src_dir)
            finished.append((dst_path, st))
        for path, st in finished:
            os.chmod(path, stat.S_IMODE(st.st_mode))
            os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))

    def copy_entries(self, src_dir: int, dst_dir: int, src_path: str,
                     dst_path: str) -> list[tuple[str, str, os.stat_result]]:
        """Copy one directory's non-directory entries; return its subdirectories, created."""
        subdirs = []
        with os.scandir(src_dir) as it:
            entries = list(it)
        for entry in entries:
            name = entry.name
            st = entry.stat(follow_symlinks=False)
            mode = st.st_mode
            if stat.S_ISDIR(mode):
                os.mkdir(name, 0o700, dir_fd=dst_dir)
                subdirs.append((src_path + "/" + name, dst_path + "/" + name, st))
                continue
            if st.st_nlink > 1:
                key = (st.st_dev, st.st_ino)
                first = self.links.get(key)
                if first is not None:
                    os.link(first, name, dst_dir_fd=dst_dir, follow_symlinks=False)
                    continue
                self.links[key] = dst_path + "/" + name
            if stat.S_ISREG(mode):
                self.copy_file(src_dir, dst_dir, name, st)
                continue
            if stat.S_ISLNK(mode):
                os.symlink(os.readlink(name, dir_fd=src_dir), name, dir_fd=dst_dir)
            elif stat.S_ISFIFO(mode):
                os.mkfifo(name, 0o600, dir_fd=dst_dir)
            else:  # character and block devices, sockets
                os.mknod(name, stat.S_IFMT(mode) | 0o600, st.st_rdev, dir_fd=dst_dir)
            _path_meta(src_path + "/" + name, dst_path + "/" + name, dst_dir, name, st)
        return subdirs

    def copy_file(self, src_dir: int, dst_dir: int, name: str, st: os.stat_result) -> None:
        sfd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=src_dir)
        try:
            dfd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600,
                          dir_fd=dst_dir)
            try:
                if st.st_size:
                    self.copy_data(sfd, dfd, st)
                _fd_meta(sfd, dfd, st)
            finally:
                os.close(dfd)
        finally:
            os.close(sfd)


def _copy_range(src_fd: int, dst_fd: int, pos: int, end: int) -> None:
    while pos < end:
        try:
            n = os.copy_file_range(src_fd, dst_fd, min(end - pos, _CHUNK), pos, pos)
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL):
                raise
            n = _plain_copy(src_fd, dst_fd, pos, end - pos)
        if n == 0:  # the source shrank under us
            break
        pos += n


def _plain_copy(src_fd: int, dst_fd: int, pos: int, length: int) -> int:
    data = os.pread(src_fd, min(length, 1 << 20), pos)
    os.pwrite(dst_fd, data, pos)
    return len(data)


def _set_xattr(dst: int | str, name: str, value: bytes) -> None:
    try:
        os.setxattr(dst, name, value, follow_symlinks=isinstance(dst, int))
    except OSError as exc:
        # security.selinux and friends may be refused; Go ignores ENOTSUP/EPERM too.
        if exc.errno not in (*_NO_XATTRS, errno.EPERM):
            raise


def _copy_xattrs(src: int | str, dst: int | str) -> None:
    # Paths are never followed (they may be symlinks); fds cannot be, and Python refuses
    # follow_symlinks=False with an fd.
    follow = isinstance(src, int)
    try:
        names = os.listxattr(src, follow_symlinks=follow)
    except OSError as exc:
        if exc.errno in _NO_XATTRS:
            return
        raise
    for name in names:
        _set_xattr(dst, name, os.getxattr(src, name, follow_symlinks=follow))


def _fd_meta(src_fd: int, dst_fd: int, st: os.stat_result) -> None:
    os.fchown(dst_fd, st.st_uid, st.st_gid)  # before chmod: chown clears setuid bits
    _copy_xattrs(src_fd, dst_fd)
    os.fchmod(dst_fd, stat.S_IMODE(st.st_mode))
    os.utime(dst_fd, ns=(st.st_atime_ns, st.st_mtime_ns))


def _path_meta(src: str, dst: str, dst_dir: int, name: str, st: os.stat_result) -> None:
    # Symlinks, FIFOs and devices cannot be opened for this; xattr calls take no dir fd.
    os.chown(name, st.st_uid, st.st_gid, dir_fd=dst_dir, follow_symlinks=False)
    _copy_xattrs(src, dst)
    if not stat.S_ISLNK(st.st_mode):
        os.chmod(name, stat.S_IMODE(st.st_mode), dir_fd=dst_dir)
    os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dst_dir, follow_symlinks=False)


def copy_tree(source: Path, target: Path) -> None:
    """Copy ``source`` to the new directory ``target`` with full fidelity."""
    os.mkdir(target, 0o700)
    _Copier().copy(str(source), str(target))
