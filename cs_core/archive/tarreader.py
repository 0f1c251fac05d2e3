"""A streaming tar parser that also keeps the raw header and padding bytes tar-split needs.

It reads with one large reusable buffer (``readinto``), never builds ``tarfile`` objects, and
follows Go's ``archive/tar`` reader (as forked by vbatts/tar-split with raw accounting) in what
it accepts and in which bytes belong to the "segment" before each entry: padding of the previous
entry's data, the header block, PAX and GNU long-name/link headers with their data and padding,
and old-GNU sparse extension blocks. File data (and, as in Go, the in-data sparse map of GNU
sparse 1.0) is not part of any segment.

Malformed or hostile input raises :class:`cs_core.errors.UnsafeArchive`; input that is not a
tar at all, or ends early, raises its subclass ``ArchiveFormatError`` with Go's text
(``archive/tar: invalid tar header``, ``unexpected EOF``). Numbers are parsed as strictly as
Go's ``strconv`` (no ``1_0``, no whitespace, no ``0o`` prefix).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from cs_core.archive.tarfields import (
    _bad,
    _byte_sum,
    _checksum_ok,
    _cstr,
    _decode,
    _eof,
    _num,
    _numeric,
    _pax_time_ns,
    go_int,
    parse_pax,
)
from cs_core.errors import UnsafeArchive

BLOCK = 512
#: Largest PAX or GNU long-name payload accepted (Go's ``maxSpecialFileSize``).
MAX_SPECIAL = 1 << 20
#: Largest number of sparse fragments accepted in one entry.
MAX_SPARSE_ENTRIES = 1 << 18
#: Most bytes of PAX and GNU long-name/link headers (with their data) before one entry. A real
#: entry has at most one of each; stacking hundreds of 1 MiB ones would otherwise all be held
#: for the entry's tar-split segment.
MAX_META = 4 * (MAX_SPECIAL + 2 * BLOCK)
#: Highest owner ID an entry may have: 2^32 - 1 is chown's "leave unchanged", and anything
#: larger does not fit a uid_t (Go would truncate it, often to 0).
MAX_ID = 0xFFFFFFFE
_BUFSIZE = 1 << 20
_ZERO_BLOCK = bytes(BLOCK)
_INT64_MAX = (1 << 63) - 1

# Type flags.
REG = ord("0")
REGA = 0
LINK = ord("1")
SYMLINK = ord("2")
CHAR = ord("3")
BLOCKDEV = ord("4")
DIR = ord("5")
FIFO = ord("6")
CONT = ord("7")
XHEADER = ord("x")
XGLOBAL = ord("g")
GNU_SPARSE = ord("S")
GNU_LONGNAME = ord("L")
GNU_LONGLINK = ord("K")
_HEADER_ONLY = frozenset({LINK, SYMLINK, CHAR, BLOCKDEV, DIR, FIFO})


#: mode, uid, gid, size and mtime as fixed-width octal digits each closed by a NUL or a space,
#: then the checksum as Go, GNU tar and Python write it (six digits, NUL, space): bytes 100-156
#: of a header, parsed in one match instead of six field parsers.
_PLAIN_NUMBERS = re.compile(
    rb"([0-7]{7})[\0 ]([0-7]{7})[\0 ]([0-7]{7})[\0 ]([0-7]{11})[\0 ]([0-7]{11})[\0 ]([0-7]{6})\0 ")


class TarHeader:
    """One real entry (meta headers already merged in), as Go's ``tar.Header`` sees it."""

    __slots__ = (
        "atime_ns", "devmajor", "devminor", "gid", "linkname", "mode", "mtime_ns", "name", "name_bytes",
        "pax", "physical_size", "size", "sparse", "typeflag", "uid", "xattrs",
    )

    def __init__(self) -> None:
        self.name = ""
        self.name_bytes = b""
        self.linkname = ""
        self.typeflag = REG
        self.mode = 0
        self.uid = 0
        self.gid = 0
        self.size = 0
        self.physical_size = 0
        self.mtime_ns = 0
        self.atime_ns: int | None = None
        self.devmajor = 0
        self.devminor = 0
        self.xattrs: dict[str, bytes] = {}
        self.pax: dict[str, bytes] = {}
        self.sparse: list[tuple[int, int]] | None = None


class TarReader:
    """Pull parser: ``next()`` gives headers, ``chunks()`` the current entry's data."""

    def __init__(self, stream: Any, raw_accounting: bool = False) -> None:
        self._stream = stream
        self._readinto = getattr(stream, "readinto", None)
        self._buf = bytearray(_BUFSIZE)
        self._mv = memoryview(self._buf)
        self._pos = 0
        self._end = 0
        self._eof = False
        self.consumed = 0
        self._raw: bytearray | None = bytearray() if raw_accounting else None
        self._remaining = 0  # physical data bytes of the current entry not yet read
        self._pad = 0

    # -- buffer -----------------------------------------------------------------------------

    def _read_some(self) -> int:
        """Append stream data after ``_end`` (compacting first); 0 at EOF."""
        if self._eof:
            return 0
        if self._pos == self._end:
            self._pos = self._end = 0
        elif self._end == _BUFSIZE:
            keep = self._end - self._pos
            self._buf[:keep] = self._buf[self._pos:self._end]
            self._pos, self._end = 0, keep
        view = self._mv[self._end:]
        if self._readinto is not None:
            n = self._readinto(view) or 0
        else:
            data = self._stream.read(len(view))
            n = len(data)
            view[:n] = data
        if n == 0:
            self._eof = True
        self._end += n
        self.consumed += n
        return n

    def _take(self, n: int, *, exact: bool = True) -> bytes:
        """Up to ``n`` bytes (exactly ``n`` unless EOF comes first and ``exact`` is false)."""
        while self._end - self._pos < n:
            if not self._read_some():
                if exact:
                    raise _eof()
                break
        m = min(n, self._end - self._pos)
        out = bytes(self._mv[self._pos:self._pos + m])
        self._pos += m
        return out

    def _account(self, data: bytes) -> None:
        if self._raw is not None:
            self._raw += data

    def has_raw(self) -> bool:
        return bool(self._raw)

    def take_raw(self) -> bytes:
        """The raw bytes (headers, padding) read since the last call."""
        if self._raw is None:
            return b""
        out = bytes(self._raw)
        self._raw.clear()
        return out

    # -- entries ----------------------------------------------------------------------------

    def _skip_data(self) -> None:
        while self._remaining:
            avail = self._end - self._pos
            if not avail and not self._read_some():
                raise _eof()
            avail = min(self._end - self._pos, self._remaining)
            self._account(bytes(self._mv[self._pos:self._pos + avail]))
            self._pos += avail
            self._remaining -= avail

    def _read_special(self, size: int, what: str) -> bytes:
        if size > MAX_SPECIAL:
            raise _bad(f"{what} of {size} bytes is too large")
        data = self._take(size)
        self._account(data)
        self._pad = -size % BLOCK
        return data

    def next(self) -> TarHeader | None:
        """The next entry, or None at the end of the archive."""
        if self._remaining:
            self._skip_data()
        pax: dict[str, bytes] = {}
        long_name: bytes | None = None
        long_link: bytes | None = None
        meta = 0  # bytes of extended headers read for this entry
        while True:
            blk = self._header_block()
            if blk is None:
                return None
            hdr, fmt = self._parse_block(blk)
            size = hdr.size
            if size < 0:
                raise _bad("negative size")
            tf = hdr.typeflag
            if tf in (XHEADER, XGLOBAL, GNU_LONGNAME, GNU_LONGLINK):
                meta += BLOCK + size
                if meta > MAX_META:
                    raise _bad("too many extended headers for one entry")
            if tf in (XHEADER, XGLOBAL):
                records = parse_pax(self._read_special(size, "PAX header"))
                if tf == XGLOBAL:
                    g = TarHeader()
                    g.name, g.name_bytes, g.typeflag = hdr.name, hdr.name_bytes, XGLOBAL
                    g.pax = records
                    return g
                pax = records
            elif tf in (GNU_LONGNAME, GNU_LONGLINK):
                value = _cstr(self._read_special(size, "GNU long name"))
                if tf == GNU_LONGNAME:
                    long_name = value
                else:
                    long_link = value
            else:
                return self._entry(hdr, blk, fmt, pax, long_name, long_link)

    def _header_block(self) -> bytes | None:
        """The next header block after the previous one's padding; None at the end marker
        (or where the stream simply stops at a header boundary, which Go accepts too)."""
        pad = self._pad
        pos = self._pos
        stop = pos + pad + BLOCK
        if stop <= self._end:  # all in the buffer (the usual case): one slice, no _take
            blk = bytes(self._mv[pos + pad:stop])
            raw = self._raw
            if raw is not None:
                raw += self._mv[pos:stop]
            self._pos = stop
            self._pad = 0
        elif pad:  # the padding and the block in one take: both go to the same segment
            data = self._take(pad + BLOCK, exact=False)
            self._account(data)
            if len(data) < pad:
                raise _eof()
            self._pad = 0
            blk = data[pad:]
        else:
            blk = self._take(BLOCK, exact=False)
            self._account(blk)
        if not blk:
            return None
        if len(blk) < BLOCK:
            raise _eof()
        if blk != _ZERO_BLOCK:
            return blk
        blk2 = self._take(BLOCK, exact=False)
        self._account(blk2)
        if not blk2 or blk2 == _ZERO_BLOCK:
            return None
        if len(blk2) < BLOCK:
            raise _eof()
        raise _bad()

    def _entry(self, hdr: TarHeader, blk: bytes, fmt: str, pax: dict[str, bytes],
               long_name: bytes | None, long_link: bytes | None) -> TarHeader:
        """A real entry's header with its extended headers merged in, its data next in line."""
        if pax:
            self._merge(hdr, pax)
        if long_name is not None:
            hdr.name_bytes = long_name
        if long_link is not None:
            hdr.linkname = _decode(long_link)
        if hdr.typeflag == REGA:
            hdr.typeflag = DIR if hdr.name_bytes.endswith(b"/") else REG
        hdr.name = hdr.name_bytes.decode("utf-8", "surrogateescape")
        if hdr.size < 0:
            raise _bad("negative size")
        if not (0 <= hdr.uid <= MAX_ID and 0 <= hdr.gid <= MAX_ID):
            raise UnsafeArchive(f"{hdr.name!r}: owner {hdr.uid}:{hdr.gid} is not a valid uid:gid")
        physical = 0 if hdr.typeflag in _HEADER_ONLY else hdr.size
        self._remaining = physical
        self._pad = -physical % BLOCK
        if hdr.typeflag == GNU_SPARSE:
            if fmt != "gnu":
                raise _bad("sparse entry outside GNU format")
            hdr.sparse = self._old_gnu_sparse(hdr, blk)
        elif pax:
            hdr.sparse = self._pax_sparse(hdr)
        if hdr.sparse is not None:
            self._validate_sparse(hdr)
        hdr.physical_size = self._remaining
        return hdr

    def _parse_block(self, blk: bytes) -> tuple[TarHeader, str]:
        m = _PLAIN_NUMBERS.match(blk, 100, 156)
        if m is None or int(m[6], 8) != _byte_sum(blk) - sum(blk[148:156]) + 256:
            if not _checksum_ok(blk):  # also the signed sum some old tars wrote
                raise _bad()  # junk: Go says no more either
        magic = blk[257:265]  # magic and version
        if magic == b"ustar\x0000":
            fmt = "ustar"
        elif magic == b"ustar  \x00":
            fmt = "gnu"
        elif magic[:6] == b"ustar\x00" and blk[508:512] == b"tar\x00":
            fmt = "star"
        else:
            fmt = "v7"
        h = TarHeader()
        h.typeflag = blk[156]
        end = blk.find(0, 0, 100)
        h.name_bytes = blk[:end] if end >= 0 else blk[:100]
        if blk[157]:
            h.linkname = _decode(_cstr(blk[157:257]))
        if m is not None:  # what every common writer emits; the same values _num gives
            mode, uid, gid, size, mtime, _ = m.groups()
            h.mode, h.uid, h.gid, h.size = int(mode, 8), int(uid, 8), int(gid, 8), int(size, 8)
            h.mtime_ns = int(mtime, 8) * 1_000_000_000
        else:
            h.size = _num(blk[124:136], "size")
            h.mode = _num(blk[100:108], "mode")
            h.uid = _num(blk[108:116], "uid")
            h.gid = _num(blk[116:124], "gid")
            h.mtime_ns = _num(blk[136:148], "mtime") * 1_000_000_000
        if fmt != "v7":
            if h.typeflag in (CHAR, BLOCKDEV):
                h.devmajor = _numeric(blk[329:337], "devmajor")
                h.devminor = _numeric(blk[337:345], "devminor")
            prefix = b""
            if fmt == "ustar":
                if blk[345]:
                    prefix = _cstr(blk[345:500])
            elif fmt == "star":
                prefix = _cstr(blk[345:476])
                h.atime_ns = _numeric(blk[476:488], "atime") * 1_000_000_000
            elif blk[345]:
                try:
                    h.atime_ns = _numeric(blk[345:357], "atime") * 1_000_000_000
                except UnsafeArchive:
                    h.atime_ns = None
            if prefix:
                h.name_bytes = prefix + b"/" + h.name_bytes
        return h, fmt

    @staticmethod
    def _merge(h: TarHeader, pax: dict[str, bytes]) -> None:
        for key, raw in pax.items():
            if not raw:
                continue
            try:
                if key == "path":
                    h.name_bytes = raw
                elif key == "linkpath":
                    h.linkname = _decode(raw)
                elif key == "uid":
                    h.uid = go_int(raw, "PAX uid")
                elif key == "gid":
                    h.gid = go_int(raw, "PAX gid")
                elif key == "mtime":
                    h.mtime_ns = _pax_time_ns(raw)
                elif key == "atime":
                    h.atime_ns = _pax_time_ns(raw)
                elif key == "size":
                    h.size = go_int(raw, "PAX size")
                elif key.startswith("SCHILY.xattr."):
                    h.xattrs[key[len("SCHILY.xattr."):]] = raw
            except (ValueError, UnicodeDecodeError):
                raise _bad(f"bad PAX record {key!r}") from None
        h.pax = pax

    def _old_gnu_sparse(self, h: TarHeader, blk: bytes) -> list[tuple[int, int]]:
        h.size = _numeric(blk[483:495], "realsize")
        entries: list[tuple[int, int]] = []
        area, count, ext_flag = blk[386:482], 4, blk[482]
        while True:
            for i in range(count):
                off = area[i * 24:i * 24 + 12]
                if off[0] == 0:
                    break
                entries.append((_numeric(off, "sparse offset"), _numeric(area[i * 24 + 12:i * 24 + 24],
                                                                       "sparse length")))
                if len(entries) > MAX_SPARSE_ENTRIES:
                    raise _bad("too many sparse fragments")
            if not ext_flag:
                return entries
            ext = self._take(BLOCK)
            self._account(ext)
            area, count, ext_flag = ext[:504], 21, ext[504]

    def _pax_sparse(self, h: TarHeader) -> list[tuple[int, int]] | None:
        pax = h.pax
        major, minor = pax.get("GNU.sparse.major"), pax.get("GNU.sparse.minor")
        if major == b"0" and minor in (b"0", b"1"):
            v1 = False
        elif major == b"1" and minor == b"0":
            v1 = True
        elif major or minor:
            return None
        elif pax.get("GNU.sparse.map"):
            v1 = False
        else:
            return None
        if name := pax.get("GNU.sparse.name"):
            h.name_bytes = name
            h.name = _decode(name)
        size = pax.get("GNU.sparse.size") or pax.get("GNU.sparse.realsize")
        if size:
            h.size = go_int(size, "GNU sparse size")
        if v1:
            return self._sparse_map_1x0()
        count = go_int(pax.get("GNU.sparse.numblocks", b""), "GNU sparse numblocks")
        fields = pax.get("GNU.sparse.map", b"").split(b",")
        if fields == [b""]:
            fields = []
        if count < 0 or count > MAX_SPARSE_ENTRIES or len(fields) != 2 * count:
            raise _bad("bad GNU sparse map")
        return [(go_int(fields[i], "GNU sparse map"), go_int(fields[i + 1], "GNU sparse map"))
                for i in range(0, len(fields), 2)]

    def _sparse_map_1x0(self) -> list[tuple[int, int]]:
        # Read from the entry's data, as Go does; these blocks are in no tar-split segment.
        buf = bytearray()
        tokens: list[bytes] = []
        start = 0

        def want(n: int) -> None:
            nonlocal start
            while len(tokens) < n:
                nl = buf.find(b"\n", start)
                if nl >= 0:
                    tokens.append(bytes(buf[start:nl]))
                    start = nl + 1
                    continue
                if self._remaining < BLOCK or len(buf) > MAX_SPECIAL:
                    raise _bad("bad GNU sparse 1.0 map")
                buf.extend(self._take(BLOCK))
                self._remaining -= BLOCK

        want(1)
        count = go_int(tokens[0], "GNU sparse 1.0 map")
        if count < 0 or count > MAX_SPARSE_ENTRIES:
            raise _bad("bad GNU sparse 1.0 map")
        want(1 + 2 * count)
        what = "GNU sparse 1.0 map"
        return [(go_int(tokens[1 + 2 * i], what), go_int(tokens[2 + 2 * i], what))
                for i in range(count)]

    def _validate_sparse(self, h: TarHeader) -> None:
        if h.typeflag in _HEADER_ONLY or h.size < 0:
            raise _bad("bad sparse entry")
        prev_end = 0
        total = 0
        for off, length in h.sparse or ():
            if off < 0 or length < 0 or off > _INT64_MAX - length or off + length > h.size or prev_end > off:
                raise _bad("bad sparse map")
            prev_end = off + length
            total += length
        if total != self._remaining:
            raise _bad("sparse map does not match the data size")

    # -- data -------------------------------------------------------------------------------

    def chunks(self) -> Iterator[memoryview]:
        """The current entry's physical data, in buffer-sized views valid until the next step."""
        while self._remaining:
            if self._pos == self._end and not self._read_some():
                raise _eof()
            n = min(self._end - self._pos, self._remaining)
            view = self._mv[self._pos:self._pos + n]
            self._pos += n
            self._remaining -= n
            yield view

    def take_buffered(self) -> memoryview | None:
        """All of the current entry's data if the buffer already holds it (valid until the next read)."""
        n = self._remaining
        if self._end - self._pos < n:
            return None
        view = self._mv[self._pos:self._pos + n]
        self._pos += n
        self._remaining = 0
        return view

    def drain(self) -> Iterator[bytes]:
        """Everything after the end-of-archive marker, in chunks of at most 1 MiB."""
        while True:
            if self._pos == self._end and not self._read_some():
                return
            data = bytes(self._mv[self._pos:self._end])
            self._pos = self._end
            yield data
