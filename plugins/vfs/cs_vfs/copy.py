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

from cs_core.drivers.api import Dir, open_beneath, walk

FICLONE = 0x40049409
_CHUNK = 1 << 30
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_CLONE_UNSUPPORTED = (errno.EOPNOTSUPP, errno.EXDEV, errno.EINVAL, errno.ENOTTY, errno.EPERM)
_NO_XATTRS = (errno.ENOTSUP, errno.EOPNOTSUPP)


class _Copier:
    """One tree copy. Entries are reached relative to their directory's fd, so each file costs
    one path-component lookup, not a walk from the root."""

    def __init__(self) -> None:
        # First copy of each multiply-linked inode, as a path below the target.
        self.links: dict[tuple[int, int], str] = {}
        self.target = ""
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
        # cs_core.walk walks the source and the new tree in step, iteratively and by fd, so
        # no depth (hostile layers nest thousands of levels) or path length stops it.
        # Directory modes and times are set on the way back up: a read-only directory must
        # still receive its entries, and creating them changes its mtime.
        self.target = target
        for d in walk(source, mirror=target, post=True):
            if d.leaving:
                st = os.fstat(d.fd)
                os.fchmod(d.mirror_fd, stat.S_IMODE(st.st_mode))
                os.utime(d.mirror_fd, ns=(st.st_atime_ns, st.st_mtime_ns))
                continue
            st = os.fstat(d.fd)
            os.fchown(d.mirror_fd, st.st_uid, st.st_gid)
            _copy_xattrs(d.fd, d.mirror_fd)
            self.copy_entries(d)

    def copy_entries(self, d: Dir) -> None:
        """Copy one directory's non-directory entries and create its subdirectories."""
        src_dir, dst_dir = d.fd, d.mirror_fd
        for entry in d.entries:
            name = entry.name
            st = entry.stat(follow_symlinks=False)
            mode = st.st_mode
            if stat.S_ISDIR(mode):
                os.mkdir(name, 0o700, dir_fd=dst_dir)
                continue
            if st.st_nlink > 1:
                key = (st.st_dev, st.st_ino)
                first = self.links.get(key)
                if first is not None:
                    self.link(first, dst_dir, name)
                    continue
                self.links[key] = d.join(name)
            if stat.S_ISREG(mode):
                self.copy_file(src_dir, dst_dir, name, st)
                continue
            if stat.S_ISLNK(mode):
                os.symlink(os.readlink(name, dir_fd=src_dir), name, dir_fd=dst_dir)
            elif stat.S_ISFIFO(mode):
                os.mkfifo(name, 0o600, dir_fd=dst_dir)
            else:  # character and block devices, sockets
                os.mknod(name, stat.S_IFMT(mode) | 0o600, st.st_rdev, dir_fd=dst_dir)
            _special_meta(src_dir, dst_dir, name, st)

    def link(self, first: str, dst_dir: int, name: str) -> None:
        parent, _, base = first.rpartition("/")
        if parent:
            pfd = open_beneath(self.target, parent, os.O_PATH | os.O_DIRECTORY)
        else:
            pfd = os.open(self.target, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.link(base, name, src_dir_fd=pfd, dst_dir_fd=dst_dir, follow_symlinks=False)
        finally:
            os.close(pfd)

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


def _special_meta(src_dir: int, dst_dir: int, name: str, st: os.stat_result) -> None:
    # Symlinks, FIFOs and devices cannot be opened for this and xattr calls take no dir fd:
    # the /proc link of the directory's fd keeps the path short and the last name unfollowed.
    os.chown(name, st.st_uid, st.st_gid, dir_fd=dst_dir, follow_symlinks=False)
    _copy_xattrs(f"/proc/self/fd/{src_dir}/{name}", f"/proc/self/fd/{dst_dir}/{name}")
    if not stat.S_ISLNK(st.st_mode):
        os.chmod(name, stat.S_IMODE(st.st_mode), dir_fd=dst_dir)
    os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dst_dir, follow_symlinks=False)


def copy_tree(source: Path, target: Path) -> None:
    """Copy ``source`` to the new directory ``target`` with full fidelity."""
    os.mkdir(target, 0o700)
    _Copier().copy(str(source), str(target))
