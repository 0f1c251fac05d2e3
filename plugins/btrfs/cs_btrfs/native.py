"""Changes of a snapshot against its source from btrfs generation numbers.

A child layer is a snapshot of its parent. An inode the child has not touched since the snapshot
still carries an older transaction ID (``btrfs_inode_item.transid``) and, at the same path in the
parent, the very same inode number and contents. Every change a tree comparison can find —
content, mode, owner, times, xattrs, new names (rename and link update ctime), removed names
(they modify the directory) — therefore shows up as an inode item newer than the snapshot. One
tree search with ``min_transid`` finds those; only their directories are compared, by the same
rules as Go's ``ChangesDirs``.

Items are searched after a commit (:func:`usable` syncs), since inode updates are cached until
then. Preconditions, checked by :func:`usable`: the parent is the snapshot source (UUIDs), the parent
has not changed since (no inode in it with a newer transaction and ctime), and we may search
trees (CAP_SYS_ADMIN).
Otherwise the driver falls back to the full comparison.
"""

from __future__ import annotations

import os
import stat
import struct
from pathlib import Path

from cs_btrfs import ioctl
from cs_core import Change

_INODE_TRANSID = struct.Struct("=QQ")  # btrfs_inode_item: generation, transid
_INODE_CTIME = struct.Struct("=QI")  # btrfs_inode_item.ctime at offset 124: sec, nsec
_INODE_REF = struct.Struct("=QH")  # index, name_len
_INODE_EXTREF = struct.Struct("=QQH")  # parent, index, name_len


def _newer_inodes(fd: int, since: int, since_ns: int) -> dict[int, int]:
    """Inodes written after transaction ``since`` whose ctime is not before ``since_ns``: ino -> ctime.

    The ctime filter drops atime-only updates (reading a file or listing a directory rewrites
    its inode item but never its ctime); every change a comparison can see moves ctime. It
    assumes the wall clock did not step back between the snapshot and the change.
    """
    found: dict[int, int] = {}
    for _t, objectid, _off, typ, data in ioctl.tree_search(
            fd, 0, ioctl.INODE_ITEM_KEY, ioctl.INODE_ITEM_KEY, min_transid=since + 1):
        if typ != ioctl.INODE_ITEM_KEY or _INODE_TRANSID.unpack_from(data)[1] <= since:
            continue
        sec, nsec = _INODE_CTIME.unpack_from(data, 124)
        ctime = sec * 1_000_000_000 + nsec
        if ctime >= since_ns:
            found[objectid] = ctime
    return found


def _ctime(fd: int, ino: int) -> int | None:
    for _t, _oid, _off, _typ, data in ioctl.tree_search(
            fd, 0, ioctl.INODE_ITEM_KEY, ioctl.INODE_ITEM_KEY, min_objectid=ino, max_objectid=ino):
        sec, nsec = _INODE_CTIME.unpack_from(data, 124)
        return int(sec * 1_000_000_000 + nsec)
    return None


def usable(child_fd: int, parent_fd: int) -> tuple[int, int] | None:
    """The snapshot's transaction ID and creation time if the native comparison is sound here."""
    try:
        # Inode updates wait in btrfs's delayed-inode cache until a commit; only committed
        # items are visible to a tree search.
        ioctl.sync(child_fd)
        child, parent = ioctl.subvol_info(child_fd), ioctl.subvol_info(parent_fd)
        if child.parent_uuid != parent.uuid or parent.uuid == bytes(16):
            return None
        # A parent inode rewritten since the snapshot with a ctime in the snapshot's clock tick
        # is unchanged only if the snapshot's copy of it (in the child) has that same ctime.
        for ino, ctime in _newer_inodes(parent_fd, child.otransid, child.otime_ns).items():
            if _ctime(child_fd, ino) != ctime:
                return None
    except OSError:
        return None
    return child.otransid, child.otime_ns


def _names_of(fd: int, ino: int, dir_paths: dict[int, str]) -> list[str]:
    """Every path (hard link) of inode ``ino``, relative to the subvolume root."""
    if ino == ioctl.FIRST_FREE_OBJECTID:
        return [""]
    out = []
    for _t, _oid, offset, typ, data in ioctl.tree_search(
            fd, 0, ioctl.INODE_REF_KEY, ioctl.INODE_EXTREF_KEY, min_objectid=ino, max_objectid=ino):
        if typ == ioctl.INODE_REF_KEY:
            refs: list[tuple[int, bytes]] = []
            pos = 0
            while pos < len(data):
                _index, n = _INODE_REF.unpack_from(data, pos)
                pos += _INODE_REF.size
                refs.append((offset, data[pos:pos + n]))
                pos += n
        else:
            refs = []
            pos = 0
            while pos < len(data):
                parent, _index, n = _INODE_EXTREF.unpack_from(data, pos)
                pos += _INODE_EXTREF.size
                refs.append((parent, data[pos:pos + n]))
                pos += n
        for parent_dir, name in refs:
            if parent_dir not in dir_paths:
                dir_paths[parent_dir] = ioctl.ino_path(fd, parent_dir)
            out.append(dir_paths[parent_dir] + os.fsdecode(name))
    return out


def _same_time(a: int, b: int) -> bool:
    # Go compares times at the precision tar keeps: whole seconds when either side has no ns.
    return a == b or (a // 1_000_000_000 == b // 1_000_000_000
                      and (a % 1_000_000_000 == 0 or b % 1_000_000_000 == 0))


def _differs(new: str, old: str, n: os.stat_result, o: os.stat_result) -> bool:
    if (o.st_mode != n.st_mode or o.st_uid != n.st_uid or o.st_gid != n.st_gid
            or o.st_rdev != n.st_rdev):
        return True
    if not stat.S_ISDIR(o.st_mode) and (
            not _same_time(o.st_mtime_ns, n.st_mtime_ns) or o.st_size != n.st_size):
        return True
    from cs_core.drivers.api import compared_xattrs  # the tar engine's module: not at import

    return compared_xattrs(new) != compared_xattrs(old)


def _names(path: str) -> dict[str, int]:
    with os.scandir(path) as it:
        return {e.name: e.inode() for e in it}


def _add_tree(root: str, rel: str, out: list[Change]) -> None:
    stack = [rel]  # iterative: a layer may nest thousands deep
    while stack:
        rel = stack.pop()
        out.append(Change("/" + rel, Change.ADD))
        full = os.path.join(root, rel)
        if stat.S_ISDIR(os.lstat(full).st_mode):
            stack.extend(f"{rel}/{name}" for name in _names(full))


def changes(child: Path, parent: Path, child_fd: int, since: tuple[int, int]) -> list[Change]:
    """What ``child`` changes against ``parent`` (its snapshot source), sorted by path."""
    dir_paths: dict[int, str] = {}
    touched: set[str] = set()
    for ino in _newer_inodes(child_fd, *since):
        touched.update(_names_of(child_fd, ino, dir_paths))
    # Directories holding a touched path must be walked even if they are unchanged themselves.
    walk: set[str] = set()
    for rel in touched:
        while rel:
            rel = os.path.dirname(rel)
            if rel in walk:
                break
            walk.add(rel)
    new_root, old_root = os.fspath(child), os.fspath(parent)
    out: list[Change] = []

    pending = [""]  # directories to compare; a stack, not recursion (no depth limit)

    def visit(rel: str) -> None:
        new_dir = os.path.join(new_root, rel) if rel else new_root
        old_dir = os.path.join(old_root, rel) if rel else old_root
        nn = _names(new_dir)
        try:
            on = _names(old_dir) if stat.S_ISDIR(os.lstat(old_dir).st_mode) else {}
        except FileNotFoundError:
            on = {}
        for name in nn.keys() | on.keys():
            crel = f"{rel}/{name}" if rel else name
            if (name in nn and name in on and nn[name] == on[name]
                    and crel not in touched and crel not in walk):
                continue  # the same untouched inode on both sides
            if name not in nn:
                out.append(Change("/" + crel, Change.DELETE))
                continue
            if name not in on:
                _add_tree(new_root, crel, out)
                continue
            n_path, o_path = os.path.join(new_root, crel), os.path.join(old_root, crel)
            nst, ost = os.lstat(n_path), os.lstat(o_path)
            if _differs(n_path, o_path, nst, ost):
                out.append(Change("/" + crel, Change.MODIFY))
            if stat.S_ISDIR(nst.st_mode):
                if stat.S_ISDIR(ost.st_mode):
                    pending.append(crel)
                else:
                    for sub in _names(n_path):
                        _add_tree(new_root, f"{crel}/{sub}", out)

    while pending:
        visit(pending.pop())
    # Go reports every directory above a change as modified (unless it is itself listed).
    listed = {c.path for c in out}
    for c in list(out):
        d = os.path.dirname(c.path)
        while d != "/" and d not in listed:
            listed.add(d)
            out.append(Change(d, Change.MODIFY))
            d = os.path.dirname(d)
    return sorted(out, key=lambda c: c.path)
