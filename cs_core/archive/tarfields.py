"""Field parsers of tar headers, as strict as Go's ``archive/tar`` (kept apart from the
reader, :mod:`cs_core.archive.tarreader`, which calls them only off its fast path)."""

from __future__ import annotations

import re
import zlib

from cs_core.errors import ArchiveFormatError, UnsafeArchive

_INT64_MAX = (1 << 63) - 1
_GO_INT = re.compile(rb"[+-]?[0-9]+")


def _bad(why: str = "") -> ArchiveFormatError:
    """Go's ``archive/tar.ErrHeader``, with what is wrong when it is more than junk."""
    return ArchiveFormatError("archive/tar: invalid tar header" + (f": {why}" if why else ""))


def _eof() -> ArchiveFormatError:
    """Go's ``io.ErrUnexpectedEOF``: the stream ended inside a header or an entry's data."""
    return ArchiveFormatError("unexpected EOF")


def go_int(raw: bytes, what: str) -> int:
    """Go's ``strconv.ParseInt(s, 10, 64)``: optional sign and ASCII digits, nothing else."""
    if _GO_INT.fullmatch(raw) is None:
        raise _bad(f"bad {what} {raw[:40]!r}")
    value = int(raw)
    if not -_INT64_MAX - 1 <= value <= _INT64_MAX:
        raise _bad(f"{what} overflows")
    return value


def _cstr(b: bytes) -> bytes:
    i = b.find(0)
    return b if i < 0 else b[:i]


def _numeric(b: bytes, field: str) -> int:
    """Go's ``parser.parseNumeric``: octal text or base-256 binary."""
    if b and b[0] & 0x80:
        inv = 0xFF if b[0] & 0x40 else 0
        x = 0
        for i, c in enumerate(b):
            c ^= inv
            if i == 0:
                c &= 0x7F
            if x >> 56:
                raise _bad(f"{field} overflows")
            x = (x << 8) | c
        if x >> 63:
            raise _bad(f"{field} overflows")
        return ~x if inv == 0xFF else x
    # Go trims spaces and NULs, cuts at a NUL, then wants octal digits only (ParseUint).
    t = b.strip(b" \x00")
    if not t:
        return 0
    s = _cstr(t)
    try:
        if not s.isdigit():  # bytes.isdigit: ASCII only; int() would take "0o7", "+7", "1_0"
            raise ValueError
        value = int(s, 8)
    except ValueError:
        raise _bad(f"bad {field} field {s!r}") from None
    if value > 0xFFFFFFFFFFFFFFFF:
        raise _bad(f"{field} overflows")
    return value if value <= _INT64_MAX else value - (1 << 64)


def _num(b: bytes, field: str) -> int:
    """``_numeric`` with a fast path for the usual digits followed by one NUL or space."""
    if b[0] != 0:
        v = b.rstrip(b" \x00")
        if v.isdigit():
            try:
                return int(v, 8)
            except ValueError:  # an 8 or a 9
                pass
    return _numeric(b, field)


def _byte_sum(b: bytes) -> int:
    """``sum(b)`` of a 512-byte block, 8x faster: Adler-32's low half is 1 + the byte sum
    mod 65521, exact for 256 bytes (at most 256 * 255 = 65280)."""
    return (zlib.adler32(b[:256]) & 0xFFFF) + (zlib.adler32(b[256:]) & 0xFFFF) - 2


def _checksum_ok(b: bytes) -> bool:
    field = b[148:156]
    try:
        stored = _num(field, "checksum")
    except UnsafeArchive:
        return False
    if stored == _byte_sum(b) - sum(field) + 256:
        return True
    signed = sum((c - 256 if c > 127 else c) for c in b[:148]) + 8 * 32
    signed += sum((c - 256 if c > 127 else c) for c in b[156:])
    return stored == signed


def _decode(b: bytes) -> str:
    return b.decode("utf-8", "surrogateescape")


def _pax_time_ns(v: bytes) -> int:
    """Go's ``parsePAXTime``: seconds with up to 9 fractional digits (more are truncated)."""
    sec, dot, frac = v.partition(b".")
    secs = go_int(sec, "PAX time")
    if not dot:
        return secs * 1_000_000_000
    if frac and not frac.isdigit():  # Go: anything but ASCII digits after the dot
        raise _bad(f"bad PAX time {v[:40]!r}")
    ns = int((frac + b"000000000")[:9])
    # Go: time.Unix(secs, -ns) for a negative seconds field (its sign, not its value).
    return secs * 1_000_000_000 + (-ns if sec.startswith(b"-") else ns)


def parse_pax(data: bytes) -> dict[str, bytes]:
    """PAX extended header records; GNU sparse 0.0 offset/numbytes pairs become ``GNU.sparse.map``."""
    records: dict[str, bytes] = {}
    sparse: list[bytes] = []
    pos = 0
    n = len(data)
    while pos < n:
        sp = data.find(b" ", pos, pos + 20)
        if sp < 0:
            raise _bad("malformed PAX record")
        length = go_int(data[pos:sp], "PAX record length")
        end = pos + length
        if length < 5 or end > n or data[end - 1] != 0x0A:
            raise _bad("malformed PAX record")
        rec = data[sp + 1:end - 1]
        eq = rec.find(b"=")
        if eq <= 0:
            raise _bad("malformed PAX record")
        key = rec[:eq].decode("utf-8", "surrogateescape")
        value = rec[eq + 1:]
        if "\x00" in key or (key in ("path", "linkpath", "uname", "gname") and b"\x00" in value):
            raise _bad(f"NUL in PAX record {key!r}")
        if key in ("GNU.sparse.offset", "GNU.sparse.numbytes"):
            want = "GNU.sparse.offset" if len(sparse) % 2 == 0 else "GNU.sparse.numbytes"
            if key != want or b"," in value:
                raise _bad("bad GNU sparse PAX records")
            sparse.append(value)
        else:
            records[key] = value
        pos = end
    if sparse:
        records["GNU.sparse.map"] = b",".join(sparse)
    return records
