"""A tar of a layer's changes or of its whole tree: Go's ``ExportChanges`` and
``TarWithOptions`` (with the overlay whiteout converter).
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

from cs_core.archive import tarreader as tr
from cs_core.archive.changes_common import CAP, getxattr, read_xattrs, shallow
from cs_core.archive.changes_lowers import Lower, lowers_of
from cs_core.archive.idmap import to_container
from cs_core.archive.saferoot import RESOLVE_STRICT, open_regular, openat2
from cs_core.archive.tarwriter import TarEntryOut, encode_header, entry_from_stat, write_end
from cs_core.archive.whiteouts import WHITEOUT_OPAQUE_DIR, WHITEOUT_PREFIX, WhiteoutFormat
from cs_core.errors import UnsafeArchive
from cs_core.model import Change, IDMap

_COPY = 1 << 20
_RACE_RETRIES = 8


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



_EXPORTED_SECURITY = (CAP, "security.ima")


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
        found = read_xattrs(fd if stat.S_ISREG(st.st_mode) else inode, _EXPORTED_SECURITY, follow=True)
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


@shallow
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
    lowers: Sequence[Lower], opaque_xattr: str
) -> Callable[[TarEntryOut, str, os.stat_result], TarEntryOut | None]:
    def convert(e: TarEntryOut, inode: str, st: os.stat_result) -> TarEntryOut | None:
        if stat.S_ISCHR(st.st_mode) and e.devmajor == 0 and e.devminor == 0:
            d, _, b = e.name.rpartition("/")
            e.name = f"{d}/{WHITEOUT_PREFIX}{b}" if d else WHITEOUT_PREFIX + b
            e.mode, e.typeflag, e.size = 0, tr.REG, 0
        if stat.S_ISDIR(st.st_mode) and getxattr(inode, opaque_xattr, follow=True) == b"y":
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


@shallow
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
    with lowers_of([os.fspath(x) for x in lowers] if overlay else []) as low:
        convert = _overlay_converter(low, opaque_xattr) if overlay else None
        base = os.fspath(root)
        app = _Appender(base, out, uid_map, gid_map, convert)
        try:
            for rel in _walk(base):
                app.add(rel)
        finally:
            app.close()
    write_end(out)
