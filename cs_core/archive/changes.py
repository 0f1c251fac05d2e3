"""What a layer changes, and the tar that says so.

``changes_dirs`` follows Go's ``archive.ChangesDirs`` (compare two full trees), ``overlay_changes``
Go's ``archive.OverlayChanges`` (read an overlay upper dir against its lowers), and the export
functions Go's ``ExportChanges`` / ``TarWithOptions`` (with the overlay whiteout converter).
Change paths are absolute inside the layer (``/etc/passwd``), as Go prints them.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import stat
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from cs_core.archive import tarreader as tr
from cs_core.archive.idmap import to_container
from cs_core.archive.saferoot import RESOLVE_STRICT, open_regular, openat2
from cs_core.archive.tarwriter import TarEntryOut, encode_header, entry_from_stat, write_end
from cs_core.archive.whiteouts import WHITEOUT_OPAQUE_DIR, WHITEOUT_PREFIX, WhiteoutFormat
from cs_core.errors import InvalidMappings, UnsafeArchive
from cs_core.model import NO_MAPS, Change, IDMap, IDMapPair
from cs_core.walk import walk

_COPY = 1 << 20
_RACE_RETRIES = 8
_F = TypeVar("_F", bound=Callable[..., Any])


def _shallow(fn: _F) -> _F:
    """Turn a RecursionError (a tree nested thousands deep) into a clean one-line error."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except RecursionError:
            raise UnsafeArchive("directory tree too deep to compare or export") from None

    return wrapper  # type: ignore[return-value]
_XATTR_ERRORS = (errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENODATA)


def _getxattr(path: str | int, key: str, follow: bool = False) -> bytes | None:
    """``follow`` only for a /proc/self/fd path (or a readable fd): that magic link leads to the
    very inode its fd holds (a symlink's own xattrs for an ``O_PATH`` fd of one), never further."""
    try:
        return os.getxattr(path, key, follow_symlinks=follow)
    except OSError as exc:
        if exc.errno in _XATTR_ERRORS:
            return None
        raise


def _xattrs(path: str | int, wanted: tuple[str, ...], follow: bool = False) -> dict[str, bytes]:
    """The ``user.*`` xattrs and those named in ``wanted`` that ``path`` has.

    One ``listxattr`` says which exist, so the usual file with none costs one call, not one
    per name asked for.
    """
    try:
        keys = os.listxattr(path, follow_symlinks=follow)
    except OSError as exc:
        if exc.errno in _XATTR_ERRORS:
            return {}
        raise
    out: dict[str, bytes] = {}
    for key in keys:
        if key.startswith("user.") or key in wanted:
            value = _getxattr(path, key, follow)
            if value is not None:
                out[key] = value
    return out


_CAP = "security.capability"


def compared_xattrs(path: str) -> dict[str, bytes]:
    """The xattrs by which a file counts as changed: ``user.*`` and file capabilities."""
    return _xattrs(path, (_CAP,))


class _Info:
    __slots__ = ("cap", "children", "st", "xattrs")

    def __init__(self, path: str | None, st: os.stat_result | None) -> None:
        self.st = st
        self.children: dict[str, _Info] = {}
        if path is not None and st is not None:
            self.xattrs = _xattrs(path, (_CAP,))
            self.cap = self.xattrs.pop(_CAP, None)
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


def _same_time(a: int, b: int) -> bool:
    return a == b or (
        a // 1_000_000_000 == b // 1_000_000_000 and (a % 1_000_000_000 == 0 or b % 1_000_000_000 == 0)
    )


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
        return not _same_time(o.st_mtime_ns, n.st_mtime_ns) or o.st_size != n.st_size
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


@_shallow
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


# -- overlay -----------------------------------------------------------------------------------


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


class _Lower:
    """A lower layer's entries as ``os.stat`` of ``layer/rel`` gives them (Go follows links
    here), but with every symlink resolved inside the layer (``openat2(RESOLVE_IN_ROOT)``): a
    hostile layer's link cannot make us stat host paths.

    Opened once per comparison: a name is one ``fstatat`` in its parent's cached ``O_PATH`` fd
    (only a symlink takes the slower ``openat2``), and whether an ancestor is a whiteout is
    remembered, since every entry of an upper directory asks about the same ancestors.
    """

    _CACHE = 256

    def __init__(self, layer: str) -> None:
        try:
            self.root: int | None = os.open(layer, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        except (FileNotFoundError, NotADirectoryError):
            self.root = None
        self._parents: dict[str, int | None] = {}
        self._whiteout_dirs: dict[str, bool] = {}

    def close(self) -> None:
        self._drop_parents()
        if self.root is not None:
            os.close(self.root)
            self.root = None

    def _drop_parents(self) -> None:
        for fd in self._parents.values():
            if fd is not None:
                os.close(fd)
        self._parents.clear()

    def _resolve(self, rel: str, flags: int = os.O_PATH) -> int | None:
        assert self.root is not None
        try:
            return openat2(self.root, rel or ".", flags)
        except OSError as err:
            if err.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                return None
            raise

    def _parent(self, parent: str) -> int | None:
        if not parent:
            return self.root
        if parent not in self._parents:
            if len(self._parents) >= self._CACHE:
                self._drop_parents()
            self._parents[parent] = self._resolve(parent)
        return self._parents[parent]

    def stat(self, rel: str) -> os.stat_result | None:
        if self.root is None:
            return None
        parent, _, name = rel.rpartition("/")
        pfd = self._parent(parent)
        if pfd is None:
            return None
        try:
            st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not stat.S_ISLNK(st.st_mode):
            return st
        fd = self._resolve(rel)
        if fd is None:
            return None
        try:
            return os.fstat(fd)
        finally:
            os.close(fd)

    def whiteout(self, rel: str) -> bool:
        st = self.stat(rel)
        return st is not None and _is_whiteout(st)

    def whiteout_above(self, rel: str) -> bool:
        """Whether a directory above ``rel`` is a whiteout in this layer."""
        parts = rel.split("/")[:-1]
        while parts:
            anc = "/".join(parts)
            known = self._whiteout_dirs.get(anc)
            if known is None:
                known = self._whiteout_dirs[anc] = self.whiteout(anc)
            if known:
                return True
            parts.pop()
        return False

    def hides_opaque(self, rel: str) -> bool | None:
        """For an opaque directory ``rel`` of the layer above: True if this layer has something
        there (the directory replaced it), False if it is hidden already; None: look lower."""
        lst = self.stat(rel)
        if lst is not None:
            return not _is_whiteout(lst)
        if self.whiteout_above(rel):
            return False
        return None


@contextlib.contextmanager
def _lowers(layers: Sequence[str]) -> Iterator[list[_Lower]]:
    opened = [_Lower(layer) for layer in layers]
    try:
        yield opened
    finally:
        for layer in opened:
            layer.close()


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
        if exc.errno in _XATTR_ERRORS:
            return None
        raise
    finally:
        os.close(fd)


def _opaque_deleted(lowers: Sequence[_Lower], dir_fd: int, name: str, rel: str, st: os.stat_result,
                    opaque_xattr: str) -> bool:
    if not lowers or not stat.S_ISDIR(st.st_mode) or _opaque_xattr_at(dir_fd, name, opaque_xattr) != b"y":
        return False
    for layer in lowers:
        hidden = layer.hides_opaque(rel)
        if hidden is not None:
            return hidden
    return False


def _lower_kind(lowers: Sequence[_Lower], rel: str, st: os.stat_result) -> int | None:
    """Go's lookup of an upper entry in the lowers: Modify when a lower has it (None when it is
    an unchanged directory), Add when none has it or a whiteout hides it first."""
    for layer in lowers:
        lst = layer.stat(rel)
        if (lst is not None and _is_whiteout(lst)) or layer.whiteout_above(rel):
            return Change.ADD
        if lst is not None:
            if (
                stat.S_ISDIR(lst.st_mode)
                and stat.S_ISDIR(st.st_mode)
                and lst.st_size == st.st_size
                and lst.st_mode == st.st_mode
                and _same_time(st.st_mtime_ns, lst.st_mtime_ns)
            ):
                return None
            return Change.MODIFY
    return Change.ADD


def _listing(root: str, rel: str) -> Iterator[tuple[str, bool]]:
    """A directory's (name, is a directory) in lexical order, from the entries' types (no stat
    per entry); empty when it went away meanwhile."""
    try:
        with os.scandir(os.path.join(root, rel)) as it:
            found = [(e.name, e.is_dir(follow_symlinks=False)) for e in it]
    except (FileNotFoundError, NotADirectoryError):
        return iter(())
    return iter(sorted(found))


def _walk(root: str, rel: str = "") -> Iterator[str]:
    """Lexical pre-order walk (Go ``filepath.Walk``), paths relative to ``root``; never follows
    a link it lists. Only names: each consumer stats an entry itself, through its parent's fd.

    Iterative (a stack of directory listings): a layer may nest thousands deep.
    """
    stack = [(rel, _listing(root, rel))]
    while stack:
        base, names = stack[-1]
        name, is_dir = next(names, ("", False))
        if not name:
            stack.pop()
            continue
        crel = f"{base}/{name}" if base else name
        yield crel
        if is_dir:
            stack.append((crel, _listing(root, crel)))


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


@_shallow
def overlay_changes(upper: Path, lowers: Sequence[Path], opaque_xattr: str) -> list[Change]:
    """Go ``OverlayChanges``: char device 0/0 = deleted; opaque dir over a lower = deleted (and re-added)."""
    out: list[Change] = []
    changed_dirs: set[str] = set()
    with _lowers([os.fspath(x) for x in lowers]) as low:
        for dir_fd, name, rel, st in _upper_entries(os.fspath(upper)):
            path = "/" + rel
            if _is_whiteout(st) or _opaque_deleted(low, dir_fd, name, rel, st, opaque_xattr):
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


# -- export ------------------------------------------------------------------------------------


_EXPORTED_SECURITY = (_CAP, "security.ima")


class _Appender:
    """Go's ``tarAppender``: headers from lstat, hardlinks by inode, xattrs, ID mapping."""

    def __init__(
        self,
        root: str,
        out: BinaryIO,
        uid_map: Sequence[IDMap],
        gid_map: Sequence[IDMap],
        convert: Callable[[TarEntryOut, str, os.stat_result], TarEntryOut | None] | None = None,
    ) -> None:
        self.root_fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        self.out = out
        self.uid_map = uid_map
        self.gid_map = gid_map
        self.seen: dict[tuple[int, int], str] = {}
        self.convert = convert
        self.buf = bytearray(_COPY)
        self._parent: tuple[str, int] = ("", -1)

    def _parent_fd(self, parent: str) -> int:
        """An fd of directory ``parent`` beneath the root (no symlink), the last one cached."""
        if not parent:
            return self.root_fd
        if self._parent[0] != parent:
            fd = openat2(self.root_fd, parent, os.O_PATH | os.O_DIRECTORY, RESOLVE_STRICT)
            self._drop_parent()
            self._parent = (parent, fd)
        return self._parent[1]

    def _drop_parent(self) -> None:
        if self._parent[1] >= 0:
            os.close(self._parent[1])
        self._parent = ("", -1)

    def close(self) -> None:
        self._drop_parent()
        os.close(self.root_fd)

    def _stat(self, rel: str) -> tuple[os.stat_result, str, int] | None:
        """The entry's stat, link target and an fd of that very inode (readable for a regular
        file, ``O_PATH`` otherwise) that its content and xattrs are read through.

        A live layer can swap a file and a symlink (or a directory on the way) at any time:
        every lookup goes through the parent opened beneath the root with no symlink followed,
        and the fd must be the inode we lstat'ed, else we look again. None: gone.
        """
        parent, _, base = rel.rpartition("/")
        for _ in range(_RACE_RETRIES):
            try:
                pfd = self._parent_fd(parent)
                st = os.stat(base, dir_fd=pfd, follow_symlinks=False)
                link = os.readlink(base, dir_fd=pfd) if stat.S_ISLNK(st.st_mode) else ""
                if stat.S_ISREG(st.st_mode):
                    try:
                        fd, fst = open_regular(pfd, base)
                    except UnsafeArchive:
                        continue
                else:
                    fd = os.open(base, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=pfd)
                    fst = os.fstat(fd)
            except (FileNotFoundError, NotADirectoryError):
                return None
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.EXDEV):  # a parent is now a symlink
                    return None
                if exc.errno == errno.EINVAL:  # no longer a symlink
                    continue
                raise
            if (fst.st_dev, fst.st_ino) == (st.st_dev, st.st_ino):
                return fst, link, fd
            os.close(fd)
        raise UnsafeArchive(f"{rel!r} kept changing while the layer was exported")

    def add(self, name: str) -> None:
        found = self._stat(name.rstrip("/"))
        if found is None:
            return
        st, link, fd = found
        try:
            self._add(f"/proc/self/fd/{fd}", name, st, link, fd)
        finally:
            os.close(fd)

    def _add(self, inode: str, name: str, st: os.stat_result, link: str, fd: int) -> None:
        """``inode``: the entry's /proc/self/fd path, so xattrs come from the inode checked."""
        if stat.S_ISSOCK(st.st_mode):
            return
        e = entry_from_stat(name, st, link)
        # A regular file's fd is open for reading: its xattrs are read through it, saving a
        # walk of /proc per file (an O_PATH fd of anything else only works through /proc).
        found = _xattrs(fd if stat.S_ISREG(st.st_mode) else inode, _EXPORTED_SECURITY, follow=True)
        # Go's order: the security.* ones first, then user.* in listxattr order.
        e.xattrs.update((key, found.pop(key)) for key in _EXPORTED_SECURITY if key in found)
        e.xattrs.update(found)
        if not stat.S_ISDIR(st.st_mode) and st.st_nlink > 1:
            first = self.seen.get((st.st_dev, st.st_ino))
            if first is not None:
                e.typeflag, e.linkname, e.size = tr.LINK, first, 0
            else:
                self.seen[(st.st_dev, st.st_ino)] = e.name
        if (self.uid_map or self.gid_map) and not os.path.basename(e.name.rstrip("/")).startswith(
            WHITEOUT_PREFIX
        ):
            e.uid = to_container(st.st_uid, self.uid_map)
            e.gid = to_container(st.st_gid, self.gid_map)
        extra = self.convert(e, inode, st) if self.convert is not None else None
        if extra is not None:
            self.out.write(encode_header(e))
            e = extra
        self.out.write(encode_header(e))
        if e.typeflag == tr.REG and e.size > 0 and stat.S_ISREG(st.st_mode):
            self._copy(fd, e.size)

    def _copy(self, fd: int, size: int) -> None:
        view = memoryview(self.buf)
        left = size
        while left > 0:
            n = os.readv(fd, [view[: min(left, _COPY)]])
            if not n:
                break
            self.out.write(view[:n])
            left -= n
        if left > 0:  # the file shrank while we read it: keep the stream well-formed
            while left > 0:
                step = min(left, _COPY)
                self.out.write(bytes(step))
                left -= step
        self.out.write(bytes(-size % tr.BLOCK))

    def whiteout(self, name: str, mtime: int) -> None:
        # Go's ExportChanges builds this header by hand: no user or group names.
        self.out.write(encode_header(TarEntryOut(name, tr.REG, mtime=mtime, uname="", gname="")))


@_shallow
def export_changes(
    root: Path,
    changes: Sequence[Change],
    out: BinaryIO,
    uid_map: Sequence[IDMap] = (),
    gid_map: Sequence[IDMap] = (),
) -> None:
    """A tar of ``changes`` read from ``root``; deletions become ``.wh.<name>`` (Go ``ExportChanges``)."""
    import time

    base = os.fspath(root)
    app = _Appender(base, out, uid_map, gid_map)
    now = int(time.time())
    try:
        for change in sorted(changes, key=lambda c: c.path):
            if change.kind == Change.DELETE:
                d, _, b = change.path.rpartition("/")
                app.whiteout(f"{d}/{WHITEOUT_PREFIX}{b}"[1:], now)
            else:
                app.add(change.path[1:])
    finally:
        app.close()
    write_end(out)


def _overlay_converter(
    lowers: Sequence[_Lower], opaque_xattr: str
) -> Callable[[TarEntryOut, str, os.stat_result], TarEntryOut | None]:
    def convert(e: TarEntryOut, inode: str, st: os.stat_result) -> TarEntryOut | None:
        if stat.S_ISCHR(st.st_mode) and e.devmajor == 0 and e.devminor == 0:
            d, _, b = e.name.rpartition("/")
            e.name = f"{d}/{WHITEOUT_PREFIX}{b}" if d else WHITEOUT_PREFIX + b
            e.mode, e.typeflag, e.size = 0, tr.REG, 0
        if stat.S_ISDIR(st.st_mode) and _getxattr(inode, opaque_xattr, follow=True) == b"y":
            e.xattrs.pop(opaque_xattr, None)
            rel = e.name.rstrip("/")
            for layer in lowers:
                hidden = layer.hides_opaque(rel)
                if hidden is not None:
                    if not hidden:
                        return None
                    return TarEntryOut(
                        f"{rel}/{WHITEOUT_OPAQUE_DIR}", tr.REG, mode=e.mode & 0o777, uid=e.uid, gid=e.gid
                    )
        return None

    return convert


@_shallow
def export_tree(
    root: Path,
    out: BinaryIO,
    *,
    whiteout_format: WhiteoutFormat = WhiteoutFormat.DELETE,
    opaque_xattr: str = "trusted.overlay.opaque",
    lowers: Sequence[Path] = (),
    uid_map: Sequence[IDMap] = (),
    gid_map: Sequence[IDMap] = (),
) -> None:
    """A tar of the whole tree under ``root`` in lexical order (Go ``TarWithOptions``).

    With OVERLAY, char devices 0/0 become ``.wh.<name>`` and opaque directories that exist in a
    lower layer get a ``.wh..wh..opq`` entry: overlay's native diff.
    """
    overlay = whiteout_format == WhiteoutFormat.OVERLAY
    with _lowers([os.fspath(x) for x in lowers] if overlay else []) as low:
        convert = _overlay_converter(low, opaque_xattr) if overlay else None
        base = os.fspath(root)
        app = _Appender(base, out, uid_map, gid_map, convert)
        try:
            for rel in _walk(base):
                app.add(rel)
        finally:
            app.close()
    write_end(out)
