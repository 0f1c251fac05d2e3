"""Writing tar headers the way Go's ``archive/tar`` Writer does for layer diffs.

USTAR when every field fits, PAX records otherwise (long or non-ASCII names, xattrs, big IDs or
sizes); modification times in whole seconds and no access times, as Go's writer produces when
no format is forced.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
from functools import cache
from typing import BinaryIO

from cs_core.archive import tarreader as tr

BLOCK = 512
_OCTAL_MAX = {8: 0o7777777, 12: 0o77777777777}


@cache
def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except (KeyError, OverflowError):
        return ""


@cache
def group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except (KeyError, OverflowError):
        return ""


def _pax_record(key: str, value: bytes) -> bytes:
    body = b" " + key.encode("utf-8", "surrogateescape") + b"=" + value + b"\n"
    n = len(body) + 1
    while len(str(n)) + len(body) != n:
        n = len(str(n)) + len(body)
    return str(n).encode() + body


def _split_ustar(name: bytes) -> tuple[bytes, bytes] | None:
    if len(name) <= 100:
        return b"", name
    for i in range(min(len(name) - 1, 155), 0, -1):
        if name[i] == 0x2F and len(name) - i - 1 <= 100 and i <= 155 and len(name) - i - 1 > 0:
            return name[:i], name[i + 1:]
    return None


class TarEntryOut:
    """What to write for one member."""

    __slots__ = ("devmajor", "devminor", "gid", "gname", "linkname", "mode", "mtime", "name", "size",
                 "typeflag", "uid", "uname", "xattrs")

    def __init__(self, name: str, typeflag: int, *, mode: int = 0, uid: int = 0, gid: int = 0, size: int = 0,
                 mtime: int = 0, linkname: str = "", devmajor: int = 0, devminor: int = 0,
                 xattrs: dict[str, bytes] | None = None, uname: str | None = None,
                 gname: str | None = None) -> None:
        self.name = name
        self.typeflag = typeflag
        self.mode = mode
        self.uid = uid
        self.gid = gid
        self.size = size
        self.mtime = mtime
        self.linkname = linkname
        self.devmajor = devmajor
        self.devminor = devminor
        self.xattrs = xattrs or {}
        # None: looked up from uid/gid, as Go's FileInfoHeader; "" for headers Go builds by hand.
        self.uname = uname
        self.gname = gname


_FIELD = {8: b"%07o\x00", 12: b"%011o\x00"}


def _fit(v: int, width: int) -> bytes:
    """An octal field; a value it cannot hold is written as 0 (a PAX record carries it)."""
    return _FIELD[width] % (v if 0 <= v <= _OCTAL_MAX[width] else 0)


def _block(name: bytes, prefix: bytes, e: TarEntryOut, typeflag: int, size: int, linkname: bytes,
           uname: bytes, gname: bytes) -> bytes:
    # Joined from its fields in one go: this runs once per exported entry, and byte-by-byte
    # assignment into a bytearray was a third of a layer diff's time.
    head = b"".join((
        name[:100].ljust(100, b"\x00"), _fit(e.mode, 8), _fit(e.uid, 8), _fit(e.gid, 8),
        _fit(size, 12), _fit(e.mtime, 12), b"        ", bytes((typeflag,)),
        linkname[:100].ljust(100, b"\x00"), b"ustar\x0000", uname[:32].ljust(32, b"\x00"),
        gname[:32].ljust(32, b"\x00"), _fit(e.devmajor, 8), _fit(e.devminor, 8),
        prefix[:155].ljust(155, b"\x00"), bytes(12),
    ))
    return b"%s%06o\x00 %s" % (head[:148], sum(head), head[156:])


def encode_header(e: TarEntryOut) -> bytes:
    """The header block(s) for ``e`` (a PAX extended header first when USTAR cannot hold it)."""
    name = e.name.encode("utf-8", "surrogateescape")
    link = e.linkname.encode("utf-8", "surrogateescape")
    uname = (user_name(e.uid) if e.uname is None else e.uname).encode()
    gname = (group_name(e.gid) if e.gname is None else e.gname).encode()
    pax: dict[str, bytes] = {}
    split = _split_ustar(name) if name.isascii() else None
    if split is None:
        pax["path"] = name
        split = (b"", name[:100])
    if len(link) > 100 or not link.isascii():
        pax["linkpath"] = link
    if not 0 <= e.uid <= 0o7777777:
        pax["uid"] = str(e.uid).encode()
    if not 0 <= e.gid <= 0o7777777:
        pax["gid"] = str(e.gid).encode()
    if e.size > 0o77777777777:
        pax["size"] = str(e.size).encode()
    if not 0 <= e.mtime <= 0o77777777777:
        pax["mtime"] = str(e.mtime).encode()
    for key, value in e.xattrs.items():
        pax["SCHILY.xattr." + key] = value
    out = b""
    if pax:
        data = b"".join(_pax_record(k, pax[k]) for k in sorted(pax))
        dirname, _, base = e.name.rstrip("/").rpartition("/")
        pname = (f"{dirname}/PaxHeaders.0/{base}" if dirname else f"PaxHeaders.0/{base}")
        pname_b = pname.encode("utf-8", "surrogateescape")[:100]
        ph = TarEntryOut(pname, tr.XHEADER, mtime=0)
        out += _block(pname_b, b"", ph, tr.XHEADER, len(data), b"", b"", b"")
        out += data + bytes(-len(data) % BLOCK)
    out += _block(split[1], split[0], e, e.typeflag, e.size, link[:100], uname, gname)
    return out


def entry_from_stat(name: str, st: os.stat_result, linkname: str = "") -> TarEntryOut:
    """Go's ``FileInfoHeader`` for a file (type bits kept in the mode, as containers/storage does)."""
    mode = st.st_mode
    fmt = stat.S_IFMT(mode)
    if stat.S_ISREG(mode):
        tf, size = tr.REG, st.st_size
    elif stat.S_ISDIR(mode):
        tf, size = tr.DIR, 0
        if not name.endswith("/"):
            name += "/"
    elif stat.S_ISLNK(mode):
        tf, size = tr.SYMLINK, 0
    elif stat.S_ISCHR(mode):
        tf, size = tr.CHAR, 0
    elif stat.S_ISBLK(mode):
        tf, size = tr.BLOCKDEV, 0
    elif stat.S_ISFIFO(mode):
        tf, size = tr.FIFO, 0
    else:
        raise ValueError(f"cannot archive {name!r}: unsupported file type")
    major = minor = 0
    if tf in (tr.CHAR, tr.BLOCKDEV):
        major, minor = os.major(st.st_rdev), os.minor(st.st_rdev)
    return TarEntryOut(name, tf, mode=(mode & 0o7777) | fmt, uid=st.st_uid, gid=st.st_gid, size=size,
                       mtime=st.st_mtime_ns // 1_000_000_000, linkname=linkname, devmajor=major,
                       devminor=minor)


def write_end(out: BinaryIO) -> None:
    """The end-of-archive marker (two zero blocks), as Go's ``Writer.Close``."""
    out.write(bytes(2 * BLOCK))
