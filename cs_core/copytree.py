"""Copy a tree into a layer through file descriptors (Go ``CopyWithTar`` + chrooted untar).

The destination is hostile: a layer may hold ``data/sub -> /etc``. Every destination directory
is reached by ``openat2(RESOLVE_IN_ROOT)`` from the layer root or by ``openat(O_NOFOLLOW)`` from
its parent, and whatever is in the way of an entry (a symlink included) is removed and replaced,
as Go's untar does, so nothing is ever written outside the root. The walk is
:func:`cs_core.walk.walk` (iterative, no depth limit).
"""

from __future__ import annotations

import contextlib
import errno
import os
import posixpath
import stat
from collections.abc import Callable

from cs_core.archive.saferoot import RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS, RESOLVE_NO_SYMLINKS, openat2
from cs_core.walk import chmod_nofollow, remove_at, walk

Owners = Callable[[int, int], tuple[int, int]]

_IN_ROOT = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
# What shutil.copystat ignores too: the filesystem or the caller cannot keep that attribute.
_XATTR_SKIP = (errno.EPERM, errno.ENOTSUP, errno.ENODATA, errno.EINVAL, errno.EACCES)
_CHUNK = 1 << 30


def _mkdir_all(root_fd: int, rel: str, shown: str) -> int:
    """Go's ``MkdirAll`` of ``rel`` beneath ``root_fd``; returns an open fd of it.

    A non-directory in the way is ENOTDIR ("mkdir <shown>: not a directory", as Go says).
    """
    parts = [p for p in rel.split("/") if p]
    fd = os.dup(root_fd)
    try:
        for i, part in enumerate(parts):
            prefix = "/".join(parts[: i + 1])
            try:
                nfd = openat2(root_fd, prefix, _DIR, _IN_ROOT)
            except FileNotFoundError:
                with contextlib.suppress(FileExistsError):  # a dangling symlink: reported next
                    os.mkdir(part, 0o755, dir_fd=fd)
                nfd = openat2(root_fd, prefix, _DIR, _IN_ROOT)
            except NotADirectoryError:
                exc = NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), shown)
                exc.go_op = "mkdir"  # type: ignore[attr-defined]
                raise exc from None
            os.close(fd)
            fd = nfd
    except BaseException:
        os.close(fd)
        raise
    return fd


def _clear_way(dfd: int, name: str, is_dir: bool) -> None:
    """Whatever is at ``name`` goes unless both it and the new entry are directories; a
    symlink the layer holds is removed, never followed."""
    try:
        st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if not (is_dir and stat.S_ISDIR(st.st_mode)):
        remove_at(dfd, name)


def _open_source(sfd: int, name: str) -> int:
    """A readable fd of entry ``name`` of ``sfd``; ``name`` "" is ``sfd`` itself (an O_PATH fd)."""
    if not name:
        return os.open(f"/proc/self/fd/{sfd}", os.O_RDONLY | os.O_CLOEXEC)
    return os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=sfd)


def _copy_xattrs(src: int, dst: int) -> None:
    try:
        keys = os.listxattr(src)
    except OSError as exc:
        if exc.errno in _XATTR_SKIP:
            return
        raise
    for key in keys:
        try:
            os.setxattr(dst, key, os.getxattr(src, key))
        except OSError as exc:
            if exc.errno not in _XATTR_SKIP:
                raise


def _set_meta(src: int, dst: int, st: os.stat_result, owners: Owners) -> None:
    """Owner first (chown clears set-ID bits and file capabilities), then mode, xattrs, times."""
    os.fchown(dst, *owners(st.st_uid, st.st_gid))
    os.fchmod(dst, stat.S_IMODE(st.st_mode))
    _copy_xattrs(src, dst)
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))


def _copy_data(src: int, dst: int) -> None:
    try:
        while os.copy_file_range(src, dst, _CHUNK):
            pass
        return
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
            raise
    while chunk := os.read(src, 1 << 20):
        os.write(dst, chunk)


class _Copier:
    """One copy: the destination top directory, the owner mapping and hard links seen."""

    def __init__(self, top_fd: int, owners: Owners) -> None:
        self.top_fd = top_fd
        self.owners = owners
        self.links: dict[tuple[int, int], str] = {}

    def put(self, sfd: int, sname: str, st: os.stat_result, dfd: int, dname: str, rel: str, *,
            read_as_file: bool = False) -> None:
        """Create ``dname`` in ``dfd`` as a copy of ``sname`` (a directory: empty, see :meth:`tree`).

        ``read_as_file``: ``dname`` becomes a regular file holding what ``sname`` reads.
        """
        mode = st.st_mode
        if stat.S_ISSOCK(mode):  # Go's tar skips sockets
            return
        _clear_way(dfd, dname, stat.S_ISDIR(mode))
        if read_as_file:
            self._file(sfd, sname, st, dfd, dname)
        elif stat.S_ISDIR(mode):
            with contextlib.suppress(FileExistsError):
                os.mkdir(dname, 0o700, dir_fd=dfd)
        elif stat.S_ISLNK(mode):
            os.symlink(os.readlink(sname, dir_fd=sfd), dname, dir_fd=dfd)
            os.chown(dname, *self.owners(st.st_uid, st.st_gid), dir_fd=dfd, follow_symlinks=False)
            os.utime(dname, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dfd, follow_symlinks=False)
        elif stat.S_ISREG(mode):
            if not (st.st_nlink > 1 and self._link(st, dfd, dname, rel)):
                self._file(sfd, sname, st, dfd, dname)
        else:
            os.mknod(dname, stat.S_IFMT(mode) | 0o600, st.st_rdev, dir_fd=dfd)
            os.chown(dname, *self.owners(st.st_uid, st.st_gid), dir_fd=dfd, follow_symlinks=False)
            chmod_nofollow(dfd, dname, stat.S_IMODE(mode))
            os.utime(dname, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dfd, follow_symlinks=False)

    def _file(self, sfd: int, sname: str, st: os.stat_result, dfd: int, dname: str) -> None:
        src = _open_source(sfd, sname)
        try:
            dst = os.open(dname, _NEW, 0o600, dir_fd=dfd)
            try:
                _copy_data(src, dst)
                _set_meta(src, dst, st, self.owners)
            finally:
                os.close(dst)
        finally:
            os.close(src)

    def _link(self, st: os.stat_result, dfd: int, dname: str, rel: str) -> bool:
        """Hard-link to the copy of an inode already copied (as Go's tar does); False: copy it."""
        key = (st.st_dev, st.st_ino)
        first = self.links.get(key)
        if first is None:
            self.links[key] = rel
            return False
        parent, _, base = first.rpartition("/")
        try:
            pfd = openat2(self.top_fd, parent or ".", os.O_PATH | os.O_DIRECTORY,
                          _IN_ROOT | RESOLVE_NO_SYMLINKS)
        except OSError:  # moved, or deeper than PATH_MAX: a copy of the data will do
            return False
        try:
            os.link(base, dname, src_dir_fd=pfd, dst_dir_fd=dfd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        finally:
            os.close(pfd)
        return True

    def tree(self, src_fd: int) -> None:
        """The contents of directory ``src_fd`` into the top directory, merged."""
        for d in walk(src_fd, mirror=self.top_fd, post=True):
            if d.leaving:
                if d.parent_fd >= 0:  # the top directory keeps its own metadata, as in Go
                    st = os.fstat(d.fd)
                    _set_meta(d.fd, d.mirror_fd, st, self.owners)
                continue
            for entry in sorted(d.entries, key=lambda e: e.name):
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                self.put(d.fd, entry.name, st, d.mirror_fd, entry.name, d.join(entry.name))


def copy_into(src_root: str, src_rel: str, dst_root: str, dst_rel: str, owners: Owners, *,
              into_dir: bool = False, shown: str = "", src_shown: str = "") -> None:
    """Go's ``CopyWithTar`` of ``src_rel`` (beneath ``src_root``) to ``dst_rel`` beneath ``dst_root``.

    Both paths resolve inside their roots (symlinks as if the root were ``/``). A directory's
    contents merge into the destination; a file lands at it, or inside it when it is a directory
    or ``into_dir`` (a host path ending in "/"). ``shown`` and ``src_shown`` name the paths in
    errors.
    """
    host_source = os.path.realpath(src_root) == "/"
    src_root_fd = os.open(src_root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    dst_root_fd = os.open(dst_root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            src = _open_top_source(host_source, src_root_fd, src_rel)
        except OSError as exc:  # worded as Go's os.Stat of the source
            err = OSError(exc.errno, exc.strerror, src_shown or src_rel)
            err.go_op = "stat"  # type: ignore[attr-defined]
            raise err from None
        try:
            # A file copied into a directory keeps the name it was given (a symlink's, not
            # its target's), as Go's filepath.Base(src).
            name = posixpath.basename(posixpath.normpath("/" + src_rel))
            _copy_resolved(src, name, dst_root_fd, posixpath.normpath("/" + dst_rel).lstrip("/"),
                           owners, into_dir, shown, read_fifo=host_source)
        finally:
            os.close(src)
    finally:
        os.close(src_root_fd)
        os.close(dst_root_fd)


def _open_top_source(host: bool, root_fd: int, rel: str) -> int:
    """An O_PATH fd of what the copy's source names.

    A layer's path resolves inside the layer. A host path is the user's own and resolves as
    Go's os.Stat does, through magic links too: ``/dev/stdin`` is ``/proc/self/fd/0``, which
    openat2 with RESOLVE_NO_MAGICLINKS refuses.
    """
    if host:
        return os.open("/" + rel, os.O_PATH | os.O_CLOEXEC)
    return openat2(root_fd, rel or ".", os.O_PATH, _IN_ROOT)


def _is_dir_beneath(root_fd: int, rel: str) -> bool:
    try:
        fd = openat2(root_fd, rel or ".", os.O_PATH, _IN_ROOT)
    except OSError:
        return False
    try:
        return stat.S_ISDIR(os.fstat(fd).st_mode)
    finally:
        os.close(fd)


def _copy_resolved(src: int, name: str, root_fd: int, rel: str, owners: Owners, into_dir: bool,
                   shown: str, *, read_fifo: bool = False) -> None:
    st = os.fstat(src)
    if stat.S_ISDIR(st.st_mode):
        top = _mkdir_all(root_fd, rel, shown)
        try:
            readable = os.open(f"/proc/self/fd/{src}", _DIR)
            try:
                _Copier(top, owners).tree(readable)
            finally:
                os.close(readable)
        finally:
            os.close(top)
        return
    if into_dir or not rel or _is_dir_beneath(root_fd, rel):
        rel = posixpath.join(rel, name)
    parent, _, base = rel.rpartition("/")
    pfd = _mkdir_all(root_fd, parent, posixpath.dirname(shown) if shown else parent)
    try:
        # A host FIFO or pipe (``copy /dev/stdin``) is read as a file: Go opens and reads it
        # too (blocking until a writer comes), though its tar then fails "write too long".
        # One in a layer has no writer to wait for: it stays a node, as in a tree.
        as_file = read_fifo and stat.S_ISFIFO(st.st_mode)
        _Copier(pfd, owners).put(src, "", st, pfd, base, base, read_as_file=as_file)
    finally:
        os.close(pfd)
