"""Apply a layer's (uncompressed) tar stream to a directory: fast, streaming, escape-proof.

Semantics follow Go's ``archive.UnpackLayer`` (what the naive diff driver uses) and, for
``WhiteoutFormat.OVERLAY``, the overlay whiteout converter. Every path is resolved through
:class:`~cs_core.archive.saferoot.SafeRoot` (``openat2`` + ``RESOLVE_IN_ROOT``), so symlinks in
the tree, whatever layer they came from, can never lead outside ``root``.

Decisions where the tar is hostile or odd (tested in ``tests/archive/test_hostile.py``):

* names are cleaned as Go's ``filepath.Clean``; absolute names are taken relative to the root,
  names that climb out (``../x``) are rejected, and so are hardlinks whose target does;
* symlink targets are stored as they are, even ``../../../etc/group`` (real images have them, and
  Go applies them): a symlink is never followed while extracting except as a parent directory
  of a later entry, and that lookup is ``RESOLVE_IN_ROOT``, where ``..`` stops at the root;
* whiteouts ``.wh.`` / ``.wh..`` / ``.wh...`` (no name, or ``.``/``..``) are rejected;
* a character device 0/0 in the tar is a device like any other (it needs ``allow_devices``);
  under OVERLAY it reads as a deletion, which the tar could have said with ``.wh.`` anyway;
* overlayfs' private xattrs (``trusted.overlay.*``, ``user.overlay.*``) are dropped under OVERLAY
  (they could redirect lookups); ``security.selinux`` is always dropped, as Go does;
* old-GNU sparse entries (type ``S``) are applied like PAX sparse ones (Go refuses them).
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat
from collections.abc import Callable, Sequence
from typing import BinaryIO

from cs_core import recordclass
from cs_core.archive import tarreader as tr
from cs_core.archive.idmap import to_host
from cs_core.archive.saferoot import SafeRoot, empty_dir_at, openat2, remove_at
from cs_core.archive.tarsplit import TarSplitWriter, crc64
from cs_core.archive.whiteouts import (
    WHITEOUT_META_PREFIX,
    WHITEOUT_OPAQUE_DIR,
    WHITEOUT_PREFIX,
    WhiteoutFormat,
)
from cs_core.atomic import WRITEBACK_MIN, start_writeback
from cs_core.errors import InvalidMappings, UnsafeArchive
from cs_core.model import ApplyResult, IDMap

#: Xattr Go writes when a force mask hides the real owner and mode.
OVERRIDE_XATTR = "user.containers.override_stat"
_ZEROS = bytes(1 << 20)
_HOLE_MIN = 1 << 16
_PROGRESS_STEP = 8 << 20
#: Errors about the machine, not the archive: passed through unchanged.
_SYSTEM_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS, errno.ENOMEM, errno.EMFILE})
_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_DIR_OPEN = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


@recordclass.frozen
class ApplyOptions:
    """How to apply a tar stream. Tar IDs are container IDs; ``uid_map``/``gid_map`` map them to host."""

    whiteout_format: WhiteoutFormat = WhiteoutFormat.DELETE
    opaque_xattr: str = "trusted.overlay.opaque"
    uid_map: tuple[IDMap, ...] = ()
    gid_map: tuple[IDMap, ...] = ()
    ignore_chown_errors: bool = False
    force_mask: int | None = None
    allow_devices: bool = True
    progress: Callable[[int], None] | None = None


_DEFAULTS = ApplyOptions()


def clean_member_name(name: str) -> str:
    """The entry's path relative to the root ("" for the root itself); rejects escapes."""
    if "\x00" in name:
        raise UnsafeArchive(f"NUL byte in entry name {name!r}")
    if name.startswith("./"):
        name = name[2:] or "."
    if name and "//" not in name and "/." not in name and not name.startswith((".", "/")) \
            and not name.endswith("/"):
        return name  # already clean: the common case, without normpath
    cleaned = posixpath.normpath(name) if name else "."
    if cleaned == ".." or cleaned.startswith("../"):
        raise UnsafeArchive(f"{name!r} is outside of the layer")
    cleaned = cleaned.lstrip("/")  # absolute names are relative to the layer root, as in Go
    return "" if cleaned == "." else cleaned


# CRC-64/ISO over n zero bytes is linear in the register: r -> Z^n(r) (between the pre- and
# post-inversion). Z^(2^k) is kept as 8 byte-indexed tables, so a hole of any size, even the
# 2^63 bytes a hostile sparse header may declare, costs at most 64 table steps, not a pass
# over its zeros: the work stays bounded by the bytes in the stream.
_CRC_POLY = 0xD800000000000000  # ISO polynomial, reversed
_MASK64 = 0xFFFFFFFFFFFFFFFF
_zero_tables: list[list[list[int]]] = []


def _zero_byte_step(r: int) -> int:
    for _ in range(8):
        r = (r >> 1) ^ _CRC_POLY if r & 1 else r >> 1
    return r


def _tables_of(columns: list[int]) -> list[list[int]]:
    """The linear map with these 64 columns, as 8 tables indexed by one byte of the input."""
    tables = []
    for j in range(8):
        t = [0] * 256
        for b in range(1, 256):
            low = b & -b
            t[b] = t[b ^ low] ^ columns[8 * j + low.bit_length() - 1]
        tables.append(t)
    return tables


def _apply_tables(tables: list[list[int]], r: int) -> int:
    out = 0
    for j in range(8):
        out ^= tables[j][(r >> (8 * j)) & 0xFF]
    return out


def _zero_power(k: int) -> list[list[int]]:
    """Z^(2^k) as tables, squaring the previous power."""
    while len(_zero_tables) <= k:
        if not _zero_tables:
            columns = [_zero_byte_step(1 << i) for i in range(64)]
        else:
            prev = _zero_tables[-1]
            columns = [_apply_tables(prev, _apply_tables(prev, 1 << i)) for i in range(64)]
        _zero_tables.append(_tables_of(columns))
    return _zero_tables[k]


def _zero_crc(n: int, crc: int | None) -> int | None:
    """The CRC after ``n`` more zero bytes (None: nothing hashed yet, and n == 0)."""
    if n <= 0:
        return crc
    if n <= len(_ZEROS):
        return crc64(_ZEROS[:n]) if crc is None else crc64(_ZEROS[:n], crc)
    r = (crc or 0) ^ _MASK64
    k = 0
    while n:
        if n & 1:
            r = _apply_tables(_zero_power(k), r)
        n >>= 1
        k += 1
    return r ^ _MASK64


class _Applier:
    def __init__(self, root: SafeRoot, reader: tr.TarReader, options: ApplyOptions, track_crc: bool) -> None:
        self.root = root
        self.reader = reader
        self.opts = options
        self.track = track_crc
        self.fmt = options.whiteout_format
        self.unpacked: set[str] = set()
        self.dirs: list[tuple[str, int, int]] = []
        self.uid_map: Sequence[IDMap] = options.uid_map
        self.gid_map: Sequence[IDMap] = options.gid_map
        self.drop_overlay_xattrs = self.fmt == WhiteoutFormat.OVERLAY
        self.mapped = bool(self.uid_map or self.gid_map)
        self.force_mask = options.force_mask
        self.aufs = self.fmt == WhiteoutFormat.AUFS

    # -- data -------------------------------------------------------------------------------

    def consume(self, hdr: tr.TarHeader) -> int | None:
        """Read an entry's data without keeping it; its CRC when tracked."""
        if self.track:
            return self.write_data(None, hdr)
        for _ in self.reader.chunks():
            pass
        return None

    def write_data(self, fd: int | None, hdr: tr.TarHeader) -> int | None:
        """Write an entry's data to ``fd`` (None: discard); the CRC of its logical content when tracked."""
        crc: int | None = None
        if hdr.sparse is None and hdr.size < _HOLE_MIN:
            whole = self.reader.take_buffered()
            if whole is not None:  # the usual small file, already in the buffer: one write
                if self.track and hdr.size:
                    crc = crc64(whole)
                while fd is not None and whole:
                    whole = whole[os.write(fd, whole):]
                return crc
        crc = self._write_dense(fd, hdr) if hdr.sparse is None else self._write_sparse(fd, hdr, hdr.sparse)
        if self.track and hdr.size > 0 and crc is None:
            crc = crc64(b"")
        return crc

    def _write_dense(self, fd: int | None, hdr: tr.TarHeader) -> int | None:
        """A regular entry's data as it streams by; runs of zeros become holes."""
        crc: int | None = None
        track = self.track
        holes = False
        for chunk in self.reader.chunks():
            n = len(chunk)
            if track:
                crc = crc64(chunk) if crc is None else crc64(chunk, crc)
            if fd is None:
                continue
            if n >= _HOLE_MIN and _ZEROS.startswith(chunk):
                os.lseek(fd, n, os.SEEK_CUR)
                holes = True
                continue
            while chunk:
                chunk = chunk[os.write(fd, chunk):]
        if holes and fd is not None:
            os.ftruncate(fd, hdr.size)
        return crc

    def _write_sparse(self, fd: int | None, hdr: tr.TarHeader, frags: list[tuple[int, int]]) -> int | None:
        """A sparse entry: its fragments' data at their offsets, the CRC over the logical file
        (holes hashed as zeros without materialising them)."""
        track = self.track
        crc: int | None = None
        fi = 0
        pos = 0  # logical position
        left = frags[0][1] if frags else 0
        if frags:
            pos = frags[0][0]
            crc = _zero_crc(pos, crc) if track else None
            if fd is not None:
                os.lseek(fd, pos, os.SEEK_SET)
        for chunk in self.reader.chunks():
            while chunk:
                while left == 0:
                    fi += 1
                    off, left = frags[fi]
                    if track:
                        crc = _zero_crc(off - pos, crc)
                    pos = off
                    if fd is not None:
                        os.lseek(fd, pos, os.SEEK_SET)
                piece = chunk[:left]
                if track:
                    crc = crc64(piece) if crc is None else crc64(piece, crc)
                n = len(piece)
                while fd is not None and piece:
                    piece = piece[os.write(fd, piece):]
                pos += n
                left -= n
                chunk = chunk[n:]
        if track:
            crc = _zero_crc(hdr.size - pos, crc)
        if fd is not None:
            os.ftruncate(fd, hdr.size)
        return crc

    # -- metadata ---------------------------------------------------------------------------

    def host_ids(self, hdr: tr.TarHeader) -> tuple[int, int]:
        try:
            return to_host(hdr.uid, self.uid_map), to_host(hdr.gid, self.gid_map)
        except InvalidMappings as exc:
            raise UnsafeArchive(f"{hdr.name}: {exc.detail}") from None

    def chown(self, hdr: tr.TarHeader, call: Callable[[int, int], None]) -> None:
        uid, gid = self.host_ids(hdr)
        try:
            call(uid, gid)
        except OSError:
            if not self.opts.ignore_chown_errors:
                raise

    def mode_bits(self, hdr: tr.TarHeader) -> int:
        if self.opts.force_mask is not None:
            return self.opts.force_mask
        return hdr.mode & 0o7777

    def xattrs(self, hdr: tr.TarHeader, target: int | str) -> None:
        items = dict(hdr.xattrs)
        if self.opts.force_mask is not None and hdr.typeflag != tr.SYMLINK:
            items[OVERRIDE_XATTR] = f"{hdr.uid}:{hdr.gid}:0{hdr.mode & 0o777:o}".encode()
        for key, value in items.items():
            if key == "security.selinux":
                continue
            if self.drop_overlay_xattrs and key.startswith(("trusted.overlay.", "user.overlay.")):
                continue
            try:
                if isinstance(target, int):
                    os.setxattr(target, key, value)
                else:
                    os.setxattr(target, key, value, follow_symlinks=False)
            except OSError as exc:
                if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
                    continue  # the filesystem cannot hold it: Go warns and goes on
                raise UnsafeArchive(f"setting xattr {key!r} on {hdr.name!r}: {exc.strerror}") from None

    @staticmethod
    def times(hdr: tr.TarHeader) -> tuple[int, int]:
        atime = hdr.atime_ns
        mtime = hdr.mtime_ns
        if atime is None or atime < mtime:
            atime = mtime
        return atime, mtime

    # -- entries ----------------------------------------------------------------------------

    def entry(self, hdr: tr.TarHeader) -> int | None:
        """Apply one entry; returns the CRC of its content when tracked (and the entry has data)."""
        tf = hdr.typeflag
        if tf == tr.XGLOBAL:
            return None
        rel = clean_member_name(hdr.name)
        parent, _, base = rel.rpartition("/")
        if rel and rel.startswith(WHITEOUT_META_PREFIX) and rel != WHITEOUT_OPAQUE_DIR \
                and not self.aufs:
            return self.consume(hdr)  # AUFS metadata (.wh..wh.plnk etc.) is never extracted
        pfd = self.root.dir_fd(parent, create=True) if rel else -1
        if base.startswith(WHITEOUT_PREFIX) and not self.aufs:
            self.whiteout(hdr, parent, pfd, base)
            return self.consume(hdr)
        if not rel:
            return self.root_entry(hdr)
        try:
            # A regular file, the common case, without create's dispatch.
            crc = self.regular(hdr, pfd, base) if tf == tr.REG else self.create(hdr, pfd, base, rel, False)
        except FileExistsError:
            # Something is there already: a directory over a directory merges, anything else is
            # replaced (Go removes it first). Only now pay for the lookup.
            st = os.stat(base, dir_fd=pfd, follow_symlinks=False)
            is_dir = stat.S_ISDIR(st.st_mode)
            if not (is_dir and tf == tr.DIR):
                remove_at(pfd, base)
                if is_dir or stat.S_ISLNK(st.st_mode):
                    self.root.invalidate()
                    pfd = self.root.dir_fd(parent, create=True)
            crc = self.create(hdr, pfd, base, rel, is_dir)
        self.unpacked.add(rel)
        if crc is None:
            crc = self.consume(hdr)
        return crc

    def create(self, hdr: tr.TarHeader, pfd: int, base: str, rel: str, dir_exists: bool) -> int | None:
        """Make the entry; raises FileExistsError before touching the stream if the name is taken."""
        tf = hdr.typeflag
        if tf in (tr.REG, tr.GNU_SPARSE):
            return self.regular(hdr, pfd, base)
        if tf == tr.DIR:
            self.directory(hdr, pfd, base, exists=dir_exists, rel=rel)
        elif tf == tr.SYMLINK:
            self.symlink(hdr, pfd, base, rel)
        elif tf == tr.LINK:
            self.hardlink(hdr, pfd, base)
        elif tf in (tr.CHAR, tr.BLOCKDEV, tr.FIFO):
            self.node(hdr, pfd, base)
        else:
            raise UnsafeArchive(f"unhandled tar header type {tf} for {hdr.name!r}")
        return None

    def regular(self, hdr: tr.TarHeader, pfd: int, base: str) -> int | None:
        fd = os.open(base, _FILE_FLAGS, 0o600, dir_fd=pfd)
        try:
            whole = self.reader.take_buffered() if hdr.size < _HOLE_MIN and hdr.sparse is None else None
            if whole is not None:  # the usual small file, already in the buffer: one write
                crc = crc64(whole) if self.track and whole else None
                while whole:
                    whole = whole[os.write(fd, whole):]
            else:
                crc = self.write_data(fd, hdr)
            if self.mapped:
                uid, gid = self.host_ids(hdr)
            else:
                uid, gid = hdr.uid, hdr.gid
            try:
                os.fchown(fd, uid, gid)
            except OSError:
                if not self.opts.ignore_chown_errors:
                    raise
            force_mask = self.force_mask
            os.fchmod(fd, hdr.mode & 0o7777 if force_mask is None else force_mask)
            atime = hdr.atime_ns
            mtime = hdr.mtime_ns
            os.utime(fd, ns=(mtime if atime is None or atime < mtime else atime, mtime))
            if hdr.xattrs or force_mask is not None:
                self.xattrs(hdr, fd)
            if hdr.size >= WRITEBACK_MIN:
                start_writeback(fd)
        finally:
            os.close(fd)
        return crc

    def directory(self, hdr: tr.TarHeader, pfd: int, base: str, *, exists: bool, rel: str) -> None:
        if not exists:
            os.mkdir(base, 0o700, dir_fd=pfd)
        fd = os.open(base, _DIR_OPEN, dir_fd=pfd)
        try:
            self.dir_meta(hdr, fd)
        finally:
            os.close(fd)
        self.dirs.append((rel, hdr.atime_ns or 0, hdr.mtime_ns))

    def dir_meta(self, hdr: tr.TarHeader, fd: int) -> None:
        self.chown(hdr, lambda u, g: os.fchown(fd, u, g))
        os.fchmod(fd, self.mode_bits(hdr))
        self.xattrs(hdr, fd)  # type: ignore[arg-type]

    def root_entry(self, hdr: tr.TarHeader) -> int | None:
        if hdr.typeflag == tr.DIR:
            self.dir_meta(hdr, self.root.fd)
            self.dirs.append(("", hdr.atime_ns or 0, hdr.mtime_ns))
            return self.consume(hdr)
        raise UnsafeArchive(f"entry {hdr.name!r} would replace the layer root")

    def symlink(self, hdr: tr.TarHeader, pfd: int, base: str, rel: str) -> None:
        target = hdr.linkname
        if "\x00" in target:
            raise UnsafeArchive(f"NUL byte in symlink target of {hdr.name!r}")
        os.symlink(target, base, dir_fd=pfd)
        self.chown(hdr, lambda u, g: os.chown(base, u, g, dir_fd=pfd, follow_symlinks=False))
        os.utime(base, ns=self.times(hdr), dir_fd=pfd, follow_symlinks=False)
        if hdr.xattrs:
            self.xattrs(hdr, f"/proc/self/fd/{pfd}/{base}")

    def hardlink(self, hdr: tr.TarHeader, pfd: int, base: str) -> None:
        try:
            target = clean_member_name(hdr.linkname)
        except UnsafeArchive:
            target = ""
        if not target:
            raise UnsafeArchive(f"invalid hardlink {hdr.name!r} -> {hdr.linkname!r}")
        tparent, _, tbase = target.rpartition("/")
        try:
            tfd = self.root.dir_fd(tparent)
        except FileNotFoundError:
            raise UnsafeArchive(f"hardlink {hdr.name!r}: target {hdr.linkname!r} not found") from None
        os.link(tbase, base, src_dir_fd=tfd, dst_dir_fd=pfd, follow_symlinks=False)
        self.chown(hdr, lambda u, g: os.chown(base, u, g, dir_fd=pfd, follow_symlinks=False))
        st = os.stat(base, dir_fd=pfd, follow_symlinks=False)
        if not stat.S_ISLNK(st.st_mode):
            os.chmod(base, self.mode_bits(hdr), dir_fd=pfd)
            os.utime(base, ns=self.times(hdr), dir_fd=pfd)
        if hdr.xattrs:
            self.xattrs(hdr, f"/proc/self/fd/{pfd}/{base}")

    def node(self, hdr: tr.TarHeader, pfd: int, base: str) -> None:
        if hdr.typeflag == tr.FIFO:
            kind = stat.S_IFIFO
            dev = 0
        else:
            if not self.opts.allow_devices:
                raise UnsafeArchive(f"device node {hdr.name!r} not allowed here")
            kind = stat.S_IFCHR if hdr.typeflag == tr.CHAR else stat.S_IFBLK
            try:
                dev = os.makedev(hdr.devmajor, hdr.devminor)
            except (OverflowError, ValueError):
                raise UnsafeArchive(f"bad device numbers for {hdr.name!r}") from None
        os.mknod(base, kind | 0o600, dev, dir_fd=pfd)
        self.chown(hdr, lambda u, g: os.chown(base, u, g, dir_fd=pfd, follow_symlinks=False))
        os.chmod(base, self.mode_bits(hdr), dir_fd=pfd)
        os.utime(base, ns=self.times(hdr), dir_fd=pfd, follow_symlinks=False)
        if hdr.xattrs:
            self.xattrs(hdr, f"/proc/self/fd/{pfd}/{base}")

    def whiteout(self, hdr: tr.TarHeader, parent: str, pfd: int, base: str) -> None:
        if base == WHITEOUT_OPAQUE_DIR:
            if self.fmt == WhiteoutFormat.OVERLAY:
                fd = openat2(self.root.fd, parent or ".", _DIR_OPEN & ~os.O_NOFOLLOW)
                try:
                    os.setxattr(fd, self.opts.opaque_xattr, b"y")
                finally:
                    os.close(fd)
                return
            fd = openat2(self.root.fd, parent or ".", _DIR_OPEN & ~os.O_NOFOLLOW)
            try:
                self.purge(fd, parent)
            finally:
                os.close(fd)
            self.root.invalidate()
            return
        victim = base[len(WHITEOUT_PREFIX):]
        if victim in ("", ".", ".."):
            raise UnsafeArchive(f"invalid whiteout {hdr.name!r}")
        if self.fmt == WhiteoutFormat.OVERLAY:
            try:
                st = os.stat(victim, dir_fd=pfd, follow_symlinks=False)
            except FileNotFoundError:
                st = None
            if st is not None:
                remove_at(pfd, victim)
                self.root.invalidate()
                pfd = self.root.dir_fd(parent, create=True)
            os.mknod(victim, stat.S_IFCHR, 0, dir_fd=pfd)
            self.chown(hdr, lambda u, g: os.chown(victim, u, g, dir_fd=pfd, follow_symlinks=False))
            return
        try:
            st = os.stat(victim, dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            return
        remove_at(pfd, victim)
        if stat.S_ISDIR(st.st_mode) or stat.S_ISLNK(st.st_mode):
            self.root.invalidate()

    def purge(self, fd: int, rel: str) -> None:
        """Opaque directory: remove what this layer did not put there, recursively."""
        with os.scandir(fd) as it:
            entries = [(e.name, e.is_dir(follow_symlinks=False)) for e in it]
        for name, is_dir in entries:
            crel = f"{rel}/{name}" if rel else name
            if crel not in self.unpacked:
                remove_at(fd, name)
            elif is_dir:
                cfd = os.open(name, _DIR_OPEN, dir_fd=fd)
                try:
                    self.purge(cfd, crel)
                finally:
                    os.close(cfd)

    def finish(self) -> None:
        """Directory times last: creating their contents changed them."""
        for rel, atime, mtime in reversed(self.dirs):
            parent, _, base = rel.rpartition("/")
            try:
                if rel:
                    pfd = self.root.dir_fd(parent)
                    os.utime(base, ns=(atime, mtime), dir_fd=pfd, follow_symlinks=False)
                else:
                    os.utime(self.root.fd, ns=(atime, mtime))
            except FileNotFoundError:
                continue  # removed by a later whiteout
            except OverflowError:
                continue


def apply_tar(root: str | os.PathLike[str], stream: BinaryIO, options: ApplyOptions = _DEFAULTS,
              tar_split: TarSplitWriter | None = None) -> ApplyResult:
    """Extract ``stream`` (an uncompressed tar) into ``root``; consumes it to EOF."""
    reader = tr.TarReader(stream, raw_accounting=tar_split is not None)
    safe = SafeRoot(root)
    applier = _Applier(safe, reader, options, tar_split is not None)
    uids: set[int] = set()
    gids: set[int] = set()
    progress = options.progress
    next_report = _PROGRESS_STEP
    try:
        while True:
            hdr = reader.next()
            # The raw bytes before the entry (its header), recorded with the entry's own line.
            seg = reader.take_raw()
            if hdr is None:
                if seg and tar_split is not None:
                    tar_split.add_segment(seg)
                break
            name = hdr.name
            if WHITEOUT_PREFIX not in name or \
                    not name.rstrip("/").rpartition("/")[2].startswith(WHITEOUT_PREFIX):
                uids.add(hdr.uid & 0xFFFFFFFF)
                gids.add(hdr.gid & 0xFFFFFFFF)
            try:
                crc = applier.entry(hdr)
            except OSError as exc:
                if exc.errno in _SYSTEM_ERRNOS:
                    raise
                raise UnsafeArchive(f"applying {hdr.name!r}: {exc.strerror or exc}") from None
            except RecursionError:
                raise UnsafeArchive(f"applying {hdr.name!r}: directory tree too deep") from None
            if tar_split is not None:
                tar_split.add_file(hdr.name_bytes, hdr.size, crc if hdr.size > 0 else None, seg)
                if reader.has_raw():
                    tar_split.add_segment(reader.take_raw())
            if progress is not None and reader.consumed >= next_report:
                progress(reader.consumed)
                next_report = reader.consumed + _PROGRESS_STEP
        for chunk in reader.drain():
            if tar_split is not None:
                tar_split.add_segment(chunk)
        if tar_split is not None:
            tar_split.add_segment(b"")  # Go's packer records the final empty read too
            tar_split.flush()
        applier.finish()
    except BaseException:
        if tar_split is not None:
            tar_split.discard()  # its writer thread must not write on after the caller closes it
        raise
    finally:
        safe.close()
    if progress is not None:
        progress(reader.consumed)
    return ApplyResult(size=reader.consumed, uids=tuple(sorted(uids)), gids=tuple(sorted(gids)))


def empty_directory(path: str | os.PathLike[str]) -> None:
    """Remove everything inside ``path`` (kept for drivers resetting a layer)."""
    fd = os.open(path, _DIR_OPEN)
    try:
        empty_dir_at(fd)
    finally:
        os.close(fd)
