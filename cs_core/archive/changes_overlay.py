"""Go's ``archive.OverlayChanges``: what an overlay upper dir changes against its lowers.

Change paths are absolute inside the layer (``/etc/passwd``), as Go prints them.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Sequence
from pathlib import Path

from cs_core.archive.changes_common import XATTR_ERRORS, is_whiteout, same_time, shallow
from cs_core.archive.changes_lowers import Lower, lowers_of
from cs_core.model import Change
from cs_core.walk import walk


def _opaque_xattr_at(dir_fd: int, name: str, key: str) -> bytes | None:
    """An xattr of directory ``name`` of ``dir_fd``, opened without following a symlink: a
    live container swapping the directory for a link learns nothing of the host."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError:
        return None
    try:
        return os.getxattr(fd, key)
    except OSError as exc:
        if exc.errno in XATTR_ERRORS:
            return None
        raise
    finally:
        os.close(fd)


def _opaque_deleted(lowers: Sequence[Lower], dir_fd: int, name: str, rel: str, st: os.stat_result,
                    opaque_xattr: str) -> bool:
    if not lowers or not stat.S_ISDIR(st.st_mode) or _opaque_xattr_at(dir_fd, name, opaque_xattr) != b"y":
        return False
    for layer in lowers:
        hidden = layer.hides_opaque(rel)
        if hidden is not None:
            return hidden
    return False


def _lower_kind(lowers: Sequence[Lower], rel: str, st: os.stat_result) -> int | None:
    """Go's lookup of an upper entry in the lowers: Modify when a lower has it (None when it is
    an unchanged directory), Add when none has it or a whiteout hides it first."""
    for layer in lowers:
        lst = layer.stat(rel)
        if (lst is not None and is_whiteout(lst)) or layer.whiteout_above(rel):
            return Change.ADD
        if lst is not None:
            if (
                stat.S_ISDIR(lst.st_mode)
                and stat.S_ISDIR(st.st_mode)
                and lst.st_size == st.st_size
                and lst.st_mode == st.st_mode
                and same_time(st.st_mtime_ns, lst.st_mtime_ns)
            ):
                return None
            return Change.MODIFY
    return Change.ADD


def _upper_entries(upper: str) -> Iterator[tuple[int, str, str, os.stat_result]]:
    """(parent fd, name, path, lstat) of every entry below ``upper``, each directory before
    what it holds; through directory fds, never following a symlink (cs_core.walk)."""
    for d in walk(upper):
        for entry in d.entries:
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            yield d.fd, entry.name, d.join(entry.name), st


@shallow
def overlay_changes(upper: Path, lowers: Sequence[Path], opaque_xattr: str) -> list[Change]:
    """Go ``OverlayChanges``: char device 0/0 = deleted; opaque dir over a lower = deleted (and re-added)."""
    out: list[Change] = []
    changed_dirs: set[str] = set()
    with lowers_of([os.fspath(x) for x in lowers]) as low:
        for dir_fd, name, rel, st in _upper_entries(os.fspath(upper)):
            path = "/" + rel
            if is_whiteout(st) or _opaque_deleted(low, dir_fd, name, rel, st, opaque_xattr):
                kind = Change.DELETE
            else:
                found = _lower_kind(low, rel, st)
                if found is None:
                    continue  # a directory the same as below
                kind = found
            if stat.S_ISDIR(st.st_mode):
                changed_dirs.add(path)
            if kind in (Change.ADD, Change.DELETE):
                _modify_parents(path, changed_dirs, out)
            out.append(Change(path, kind))
    return sorted(out, key=lambda c: c.path)


def _modify_parents(path: str, changed_dirs: set[str], out: list[Change]) -> None:
    """Go reports each parent of an added or deleted entry as modified, once."""
    parent = os.path.dirname(path)
    while parent != "/":
        if parent not in changed_dirs:
            out.append(Change(parent, Change.MODIFY))
            changed_dirs.add(parent)
        parent = os.path.dirname(parent)
