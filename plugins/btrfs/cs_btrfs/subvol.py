"""Subvolume removal: nested subvolumes first (depth-first), read-only ones made writable.

A container may create subvolumes inside its layer (``btrfs subvolume create`` in a build, a
nested storage); the kernel refuses to delete a subvolume that still holds others, and refuses
to unlink anything inside a read-only one. Children are found from the root tree's ROOT_REF
items (one search, however big the layer is); without CAP_SYS_ADMIN the tree is walked the way
Go does it (inode 256 marks a subvolume root).
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct
from collections.abc import Iterator

from cs_btrfs import ioctl
from cs_core.drivers.api import getLogger, walk

log = getLogger(__name__)  # logging itself is imported when something is logged

ROOT_REF_KEY = 156
_ROOT_REF = struct.Struct("=QQH")  # dirid, sequence, name_len


def _clear_readonly(fd: int) -> None:
    flags = ioctl.get_flags(fd)
    if flags & ioctl.SUBVOL_RDONLY:
        ioctl.set_flags(fd, flags & ~ioctl.SUBVOL_RDONLY)


def _ino_path(fd: int, tree: int, dirid: int) -> str:
    """Path of directory ``dirid`` inside subvolume ``tree``, relative to its root ("" or "a/b/")."""
    if dirid == ioctl.FIRST_FREE_OBJECTID:
        return ""
    args = ioctl.InoLookupArgs(treeid=tree, objectid=dirid)
    fcntl.ioctl(fd, ioctl.IOC_INO_LOOKUP, args)
    return os.fsdecode(args.name)


def children_from_tree(fd: int) -> list[str]:
    """Relative paths of the subvolumes directly inside the subvolume open as ``fd``."""
    tree = ioctl.tree_id(fd)
    out = []
    for _t, _oid, _child, _typ, data in ioctl.tree_search(
            fd, ioctl.ROOT_TREE_OBJECTID, ROOT_REF_KEY, ROOT_REF_KEY, min_objectid=tree, max_objectid=tree):
        dirid, _seq, name_len = _ROOT_REF.unpack_from(data)
        name = os.fsdecode(data[_ROOT_REF.size:_ROOT_REF.size + name_len])
        out.append(_ino_path(fd, tree, dirid) + name)
    return out


def children_by_walk(path: str) -> Iterator[str]:
    """Relative paths of subvolumes inside ``path``, found by walking (Go's way)."""
    for d in walk(path):  # iterative and fd-relative: a deep layer cannot stop it
        for entry in d.entries:
            # readdir's d_ino of a subvolume entry is not its root inode: lstat, as Go does.
            if entry.is_dir(follow_symlinks=False) and \
                    entry.stat(follow_symlinks=False).st_ino == ioctl.FIRST_FREE_OBJECTID:
                d.subdirs.remove(entry.name)  # deleted on its own, with what it holds
                yield d.join(entry.name)


def delete(parent: str, name: str, *, quota: bool) -> None:
    """Delete subvolume ``parent/name`` and every subvolume nested in it.

    With quotas on, the subvolume's level-0 qgroup is removed afterwards (Go removes it first,
    which current kernels refuse while the subvolume exists).
    """
    full = os.path.join(parent, name)
    fd = os.open(full, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | os.O_NOFOLLOW)
    try:
        if quota:
            # A full qgroup refuses even the metadata a deletion needs (EDQUOT): lift the limit
            # first ((u64)-1 clears it).
            try:
                ioctl.qgroup_limit(fd, ioctl.U64_MAX)
            except OSError as exc:
                log.debug("btrfs qgroup limit of %s not lifted: %s", full, exc)
        _clear_readonly(fd)
        try:
            children = children_from_tree(fd)
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.EACCES):
                raise
            children = list(children_by_walk(full))
        qgroup = ioctl.tree_id(fd) if quota else 0
    finally:
        os.close(fd)
    for rel in children:
        child = os.path.join(full, rel)
        delete(os.path.dirname(child), os.path.basename(child), quota=quota)
    with ioctl.open_dir(parent) as pfd:
        ioctl.subvol_destroy(pfd, name)
        if qgroup:
            try:
                ioctl.qgroup_remove(pfd, qgroup)
            except OSError as exc:
                # Busy until the cleaner has dropped the tree; kernels >= 6.8 then remove it.
                log.debug("btrfs qgroup 0/%d of %s not removed: %s", qgroup, full, exc)
