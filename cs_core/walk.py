"""Tree walks with no depth limit, through directory file descriptors.

A layer is hostile input: one file under thousands of nested directories imports fine, and
Python 3.11's ``os.walk``/``os.fwalk``/``shutil.rmtree`` recurse (``RecursionError`` near 1,000
levels) and pass whole paths to the kernel (``ENAMETOOLONG`` past 4,096 bytes). :func:`walk` keeps
its own stack, reaches every directory with ``openat(parent, name, O_NOFOLLOW)`` and never
builds a path for the kernel. At most :data:`MAX_OPEN` directory fds are held however deep the
tree: deeper ancestors are closed and reopened through ``..`` on the way back up, checked against
the device and inode they had (a directory moved under us is an error, not a walk elsewhere).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import stat
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from os import DirEntry

MAX_OPEN = 16  # per tree walked; a mirror doubles it (the soft limit can be as low as 64)
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class _Frame:
    __slots__ = ("fd", "ident", "mirror_fd", "mirror_ident", "name", "pending")

    def __init__(self, name: str, fd: int, mirror_fd: int) -> None:
        self.name = name
        self.fd = fd
        self.mirror_fd = mirror_fd
        self.ident = _ident(fd)
        self.mirror_ident = _ident(mirror_fd) if mirror_fd >= 0 else None
        self.pending: list[str] = []


class Dir:
    """One directory of a walk; its fds are valid only until the walk is resumed.

    On the way down (``leaving`` false) ``entries`` holds the directory's entries and ``subdirs``
    the names the walk will descend into next (edit it to prune or to add directories the caller
    created). With ``post=True`` each directory is seen again once its subtree is done
    (``leaving`` true), with ``parent_fd`` open so it can be removed or have its times set.
    """

    __slots__ = (
        "_stack",
        "entries",
        "fd",
        "leaving",
        "mirror_fd",
        "mirror_parent_fd",
        "name",
        "parent_fd",
        "subdirs",
    )

    def __init__(self, stack: list[_Frame], *, leaving: bool = False,
                 entries: list[DirEntry[str]] | None = None) -> None:
        top = stack[-1]
        self.fd = top.fd
        self.mirror_fd = top.mirror_fd
        parent = stack[-2] if len(stack) > 1 else None
        self.parent_fd = parent.fd if parent else -1
        self.mirror_parent_fd = parent.mirror_fd if parent else -1
        self.name = top.name
        self.entries = entries or []
        self.subdirs = [e.name for e in self.entries if e.is_dir(follow_symlinks=False)]
        self.leaving = leaving
        self._stack = stack

    @property
    def rel(self) -> str:
        """The directory's path below the root ("" for the root); may exceed PATH_MAX."""
        return "/".join(f.name for f in self._stack[1:])

    def join(self, name: str) -> str:
        rel = self.rel
        return f"{rel}/{name}" if rel else name


def _ident(fd: int) -> tuple[int, int]:
    st = os.fstat(fd)
    return st.st_dev, st.st_ino


def open_dir_at(dirfd: int, name: str, *, make_accessible: bool = False) -> int:
    """Open directory ``name`` of ``dirfd`` for reading, never following a symlink.

    ``make_accessible`` gives an unreadable directory (mode 0 in a rootless store) mode 0700
    first, through its own fd, so the chmod cannot land on what a symlink points at.
    """
    try:
        return os.open(name, _DIR, dir_fd=dirfd)
    except PermissionError:
        if not make_accessible:
            raise
    chmod_nofollow(dirfd, name, 0o700)
    return os.open(name, _DIR, dir_fd=dirfd)


def chmod_nofollow(dirfd: int, name: str, mode: int) -> None:
    """chmod ``name`` of ``dirfd`` unless it is a symlink (Linux has no lchmod)."""
    fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dirfd)
    try:
        if stat.S_ISLNK(os.fstat(fd).st_mode):
            return
        os.chmod(f"/proc/self/fd/{fd}", mode)  # the inode the O_PATH fd holds, not a path
    finally:
        os.close(fd)


def _close(fd: int) -> None:
    if fd >= 0:
        with contextlib.suppress(OSError):
            os.close(fd)


def _reopen_parent(child: _Frame, parent: _Frame) -> None:
    """Reopen a closed ancestor through ``..`` of its child, refusing a moved directory."""
    fd = os.open("..", _DIR, dir_fd=child.fd)
    mfd = os.open("..", _DIR, dir_fd=child.mirror_fd) if child.mirror_fd >= 0 else -1
    parent.fd, parent.mirror_fd = fd, mfd
    if _ident(fd) != parent.ident or (mfd >= 0 and _ident(mfd) != parent.mirror_ident):
        raise OSError(errno.ESTALE, "directory moved during a tree walk", parent.name)


def _scan(fd: int) -> list[DirEntry[str]]:
    with os.scandir(fd) as it:
        return list(it)


def walk(root: str | os.PathLike[str] | int, *, mirror: str | os.PathLike[str] | int | None = None,
         post: bool = False, make_accessible: bool = False) -> Iterator[Dir]:
    """Visit every directory under ``root`` (itself first), parents before children.

    ``root`` (a path, followed, or an open directory fd, which stays the caller's) is trusted;
    nothing below it is followed. ``mirror`` walks a second tree in step, for copies: the caller
    creates each subdirectory there while visiting its parent. A directory that disappears
    during the walk is skipped.
    """
    owned: list[int] = []

    def _open_root(target: str | os.PathLike[str] | int) -> int:
        if isinstance(target, int):
            return target
        fd = os.open(target, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        owned.append(fd)
        return fd

    stack: list[_Frame] = []
    try:
        stack.append(_Frame("", _open_root(root), -1 if mirror is None else _open_root(mirror)))
        yield from _enter(stack)
        open_from = 1  # frames below this index (except the root) have their fds closed
        while stack:
            top = stack[-1]
            if top.pending:
                name = top.pending.pop()
                try:
                    fd = open_dir_at(top.fd, name, make_accessible=make_accessible)
                except (FileNotFoundError, NotADirectoryError):
                    continue
                try:
                    mfd = os.open(name, _DIR, dir_fd=top.mirror_fd) if top.mirror_fd >= 0 else -1
                except BaseException:
                    os.close(fd)
                    raise
                stack.append(_Frame(name, fd, mfd))
                if len(stack) - open_from > MAX_OPEN:
                    _close(stack[open_from].fd)
                    _close(stack[open_from].mirror_fd)
                    stack[open_from].fd = stack[open_from].mirror_fd = -1
                    open_from += 1
                yield from _enter(stack)
                continue
            if len(stack) > 1 and stack[-2].fd < 0:
                _reopen_parent(top, stack[-2])
                open_from = len(stack) - 2
            if post:
                yield Dir(stack, leaving=True)
            done = stack.pop()
            if stack:  # the root's fds are closed below, once
                _close(done.fd)
                _close(done.mirror_fd)
    finally:
        for frame in stack[1:]:
            _close(frame.fd)
            _close(frame.mirror_fd)
        for fd in owned:
            _close(fd)


def _enter(stack: list[_Frame]) -> Iterator[Dir]:
    top = stack[-1]
    visit = Dir(stack, entries=_scan(top.fd))
    yield visit
    top.pending = list(reversed(visit.subdirs))


def _retry_writable(dirfd: int, call: Callable[[str], None], name: str) -> None:
    """``call(name)`` (an unlink or rmdir in ``dirfd``); on EACCES/EPERM make the dir 0700, retry.

    Layers are full of read-only directories (0555), which refuse entry removal to a rootless
    owner. An immutable file still fails: that is the caller's error to report.
    """
    try:
        try:
            call(name)
        except PermissionError:
            os.fchmod(dirfd, 0o700)
            call(name)
    except FileNotFoundError:
        return
    except OSError as exc:
        exc.go_op = "remove"  # type: ignore[attr-defined]  # how the CLI words it, as Go
        raise


def _empty(d: Dir) -> None:
    for entry in d.entries:
        if not entry.is_dir(follow_symlinks=False):
            _retry_writable(d.fd, functools.partial(os.unlink, dir_fd=d.fd), entry.name)


def remove_at(dirfd: int, name: str) -> None:
    """Remove ``name`` in ``dirfd`` and, for a directory, everything below it.

    Nothing is followed; the depth is unlimited (see :func:`walk`); a missing name is not an
    error.
    """
    try:
        os.unlink(name, dir_fd=dirfd)
        return
    except FileNotFoundError:
        return
    except (IsADirectoryError, PermissionError) as exc:
        # EISDIR, or EPERM from unlink(2) on a directory: a directory takes the walk below.
        st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
        if not stat.S_ISDIR(st.st_mode):
            raise exc
    fd = open_dir_at(dirfd, name, make_accessible=True)
    try:
        for d in walk(fd, post=True, make_accessible=True):
            if not d.leaving:
                _empty(d)
            elif d.parent_fd >= 0:
                _retry_writable(d.parent_fd, functools.partial(os.rmdir, dir_fd=d.parent_fd), d.name)
    finally:
        os.close(fd)
    with contextlib.suppress(FileNotFoundError):
        os.rmdir(name, dir_fd=dirfd)


def remove_tree(path: str | os.PathLike[str]) -> None:
    """Remove a file or directory tree at ``path`` (a symlink itself, not its target)."""
    target = os.path.abspath(path)
    parent, name = os.path.split(target)
    try:
        pfd = os.open(parent, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        remove_at(pfd, name)
    finally:
        os.close(pfd)


def disk_usage(root: str | os.PathLike[str]) -> int:
    """Bytes of every non-directory under ``root``, hard links counted once (Go ``directory.Size``).

    A missing ``root`` holds nothing.
    """
    seen: set[tuple[int, int]] = set()
    total = 0
    if not os.path.lexists(root):
        return 0
    for d in walk(root):
        for entry in d.entries:
            if entry.is_dir(follow_symlinks=False):
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            if st.st_nlink > 1:
                key = (st.st_dev, st.st_ino)
                if key in seen:
                    continue
                seen.add(key)
            total += st.st_size
    return total


def open_beneath(root: str | os.PathLike[str], rel: str, flags: int = os.O_RDONLY) -> int:
    """Open ``rel`` below ``root`` one component at a time, following no symlink on the way.

    Works at any depth (a path handed to the kernel whole stops at PATH_MAX).
    """
    fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        *parents, last = rel.split("/")
        for name in parents:
            nfd = os.open(name, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            os.close(fd)
            fd = nfd
        return os.open(last, flags | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
    finally:
        os.close(fd)
