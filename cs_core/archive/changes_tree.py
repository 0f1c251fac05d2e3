"""Go's ``archive.ChangesDirs``: what changed between two full trees.

Change paths are absolute inside the layer (``/etc/passwd``), as Go prints them.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from cs_core.archive.changes_common import CAP, read_xattrs, same_time, shallow
from cs_core.archive.idmap import to_container
from cs_core.archive.saferoot import RESOLVE_STRICT, openat2
from cs_core.errors import InvalidMappings
from cs_core.model import NO_MAPS, Change, IDMapPair


class _Info:
    __slots__ = ("cap", "children", "st", "xattrs")

    def __init__(self, path: str | None, st: os.stat_result | None) -> None:
        self.st = st
        self.children: dict[str, _Info] = {}
        if path is not None and st is not None:
            self.xattrs = read_xattrs(path, (CAP,))
            self.cap = self.xattrs.pop(CAP, None)
        else:
            self.cap = None
            self.xattrs = {}

    @property
    def is_dir(self) -> bool:
        return self.st is None or stat.S_ISDIR(self.st.st_mode)

    @property
    def dir_here(self) -> bool:
        """Present, and a directory to read."""
        return self.st is not None and stat.S_ISDIR(self.st.st_mode)


def _open_tree_dir(root_fd: int, rel: str) -> int | None:
    """Directory ``rel`` of a tree, reached with no symlink followed; None when it is gone
    (or was swapped for something else by a live container)."""
    try:
        return openat2(root_fd, rel or ".", os.O_RDONLY | os.O_DIRECTORY, RESOLVE_STRICT)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EXDEV):
            return None
        raise


def _read_dir(root_fd: int, rel: str) -> tuple[int | None, dict[str, int]]:
    fd = _open_tree_dir(root_fd, rel)
    if fd is None:
        return None, {}
    with os.scandir(fd) as it:
        return fd, {e.name: e.inode() for e in it}


def _child(dir_fd: int | None, name: str) -> _Info:
    """An entry's lstat and xattrs, both through its parent's fd (the name itself not followed)."""
    if dir_fd is None:
        return _Info(None, None)
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return _Info(None, None)
    return _Info(f"/proc/self/fd/{dir_fd}/{name}", st)


def _collect(new: str, old: str, ni: _Info, oi: _Info) -> None:
    """Go's ``walker.walk``: read both trees at once, skipping entries that are the same inode.

    Iterative (a stack of directories to read): a layer may nest thousands deep. Every read
    goes through a directory fd opened beneath its tree's root with no symlink followed, so a
    live container swapping in a symlink cannot make us read host files.
    """
    new_root = os.open(new, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    old_root = os.open(old, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        stack = [("", ni, oi)]
        while stack:
            rel, ni, oi = stack.pop()
            nfd, nn = _read_dir(new_root, rel) if ni.dir_here else (None, {})
            try:
                ofd, on = _read_dir(old_root, rel) if oi.dir_here else (None, {})
                try:
                    _collect_dir(rel, ni, oi, nfd, nn, ofd, on, stack)
                finally:
                    if ofd is not None:
                        os.close(ofd)
            finally:
                if nfd is not None:
                    os.close(nfd)
    finally:
        os.close(new_root)
        os.close(old_root)


def _collect_dir(rel: str, ni: _Info, oi: _Info, nfd: int | None, nn: dict[str, int],
                 ofd: int | None, on: dict[str, int], stack: list[tuple[str, _Info, _Info]]) -> None:
    same_dev = ni.st is not None and oi.st is not None and ni.st.st_dev == oi.st.st_dev
    for name in sorted(nn.keys() | on.keys()):
        if name in nn and name in on and nn[name] == on[name] and same_dev:
            continue
        child_n = _child(nfd, name) if name in nn else _Info(None, None)
        child_o = _child(ofd, name) if name in on else _Info(None, None)
        if child_n.st is not None:
            ni.children[name] = child_n
        if child_o.st is not None:
            oi.children[name] = child_o
        stack.append((f"{rel}/{name}" if rel else name, child_n, child_o))


def _pair_to_container(st: os.stat_result, maps: IDMapPair) -> tuple[int, int] | None:
    try:
        return to_container(st.st_uid, maps[0]), to_container(st.st_gid, maps[1])
    except InvalidMappings:
        return None


def _owners(o: os.stat_result, n: os.stat_result, omaps: IDMapPair,
            nmaps: IDMapPair) -> tuple[tuple[int, int], tuple[int, int]]:
    """Both sides' owners as Go's ``statDifferent`` compares them: each through its own
    layer's maps, but only when the new side maps (else both stay host IDs); an old
    owner its maps cannot express stays a host ID."""
    old, new = (o.st_uid, o.st_gid), (n.st_uid, n.st_gid)
    mapped = _pair_to_container(n, nmaps)
    if mapped is None:
        return old, new
    return _pair_to_container(o, omaps) or old, mapped


def _stat_different(o: os.stat_result, n: os.stat_result, omaps: IDMapPair,
                    nmaps: IDMapPair) -> bool:
    old_owner, new_owner = _owners(o, n, omaps, nmaps)
    if o.st_mode != n.st_mode or old_owner != new_owner or o.st_rdev != n.st_rdev:
        return True
    if not stat.S_ISDIR(o.st_mode):
        return not same_time(o.st_mtime_ns, n.st_mtime_ns) or o.st_size != n.st_size
    return False


def _add_changes(info: _Info, old: _Info | None, out: list[Change], omaps: IDMapPair,
                 nmaps: IDMapPair) -> None:
    """Go's ``changes.addChanges`` from the root down, iteratively (no depth limit).

    A directory not itself added or modified gets a Modify when anything below it changed:
    that is decided once its subtree is done (a frame seen a second time, ``at`` set).
    """
    # (info, old, path, added, at): ``at`` is len(out) when the frame was entered, or -1.
    stack: list[tuple[_Info, _Info | None, str, bool, int]] = [(info, old, "/", False, -1)]
    while stack:
        info, old, path, added, at = stack.pop()
        base = path.rstrip("/")
        if at >= 0:
            if old is not None and info.is_dir:
                out.extend(Change(f"{base}/{name}", Change.DELETE)
                           for name in old.children if name not in info.children)
            if len(out) > at and info.is_dir and not added and path != "/":
                out.append(Change(path, Change.MODIFY))
            continue
        at = len(out)
        if old is None:
            out.append(Change(path, Change.ADD))
            added = True
        stack.append((info, old, path, added, at))
        old_children = old.children if old is not None and info.is_dir else {}
        for name, child in info.children.items():
            cpath = f"{base}/{name}"
            ochild = old_children.get(name)
            child_added = False
            if ochild is not None:
                assert child.st is not None and ochild.st is not None
                if (
                    _stat_different(ochild.st, child.st, omaps, nmaps)
                    or ochild.cap != child.cap
                    or ochild.xattrs != child.xattrs
                ):
                    out.append(Change(cpath, Change.MODIFY))
                    child_added = True
            stack.append((child, ochild, cpath, child_added, -1))


@shallow
def changes_dirs(
    new: Path,
    old: Path | None,
    new_maps: IDMapPair = NO_MAPS,
    old_maps: IDMapPair = NO_MAPS,
) -> list[Change]:
    """Compare two full trees (Go ``ChangesDirs``), sorted by path.

    Owners are compared as container IDs, each tree's through its own layer's maps, so a
    layer re-owned for other maps than its parent's shows only what was changed in it.
    """
    new_s = os.fspath(new)
    old_s = new_s if old is None else os.fspath(old)
    # The roots' own entries: not compared, but they say whether each side is there to read.
    ni, oi = _Info(None, None), _Info(None, None)
    ni.st = os.lstat(new_s)
    oi.st = None if old is None else os.lstat(old_s)
    _collect(new_s, old_s, ni, oi)
    out: list[Change] = []
    _add_changes(ni, oi, out, old_maps, new_maps)
    return sorted(out, key=lambda c: c.path)
