"""Go's tar-split metadata format (vbatts/tar-split ``tar/storage``), written and replayed.

A tar-split stream is newline-separated JSON, one object per entry, with keys in Go's struct
order: ``type`` (1 file, 2 segment), ``name`` or ``name_raw`` (base64, for names that are not
UTF-8), ``size`` (omitted when 0), ``payload`` (base64; a segment's raw tar bytes, a file's
CRC-64/ISO of its content, ``null`` for a file without content) and ``position``.
Names are escaped as Go's ``encoding/json`` does (HTML-safe ``\\u003c`` and friends), so
what we write is byte-identical to what the Go library writes for the same tar.
"""

from __future__ import annotations

import base64
import json
import os
import posixpath
import queue
import re
import stat
import struct
import threading
import weakref
from binascii import b2a_base64
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

from cs_core import recordclass
from cs_core.errors import UnsafeArchive

FILE_TYPE = 1
SEGMENT_TYPE = 2
_COPY = 1 << 20

def _make_crc64_iso() -> Callable[..., int]:
    """Go's ``crc64.Checksum(data, crc64.MakeTable(crc64.ISO))``, with update support.

    fastcrc's SIMD version is used when installed; the table-driven fallback (for the
    zipapp, which cannot carry compiled modules) gives the same values, only slower.
    """
    try:
        import fastcrc
    except ImportError:  # pragma: no cover - exercised by the zipapp
        pass
    else:
        fast: Callable[..., int] = fastcrc.crc64.go_iso
        return fast
    poly = 0xD800000000000000  # ISO polynomial, reversed
    table = []
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ poly if crc & 1 else crc >> 1
        table.append(crc)

    def crc64(data: bytes, crc: int = 0) -> int:
        crc ^= 0xFFFFFFFFFFFFFFFF
        for byte in data:
            crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
        return crc ^ 0xFFFFFFFFFFFFFFFF

    return crc64


crc64 = _make_crc64_iso()

_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t",
            "<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
_NEEDS_ESCAPE = re.compile('["\\\\\x00-\x1f<>&\u2028\u2029]')
_NEEDS_ESCAPE_ASCII = re.compile(b'["\\\\\x00-\x1f<>&\x7f]')


def _escape_char(m: re.Match[str]) -> str:
    c = m.group(0)
    return _ESCAPES.get(c) or f"\\u{ord(c):04x}"


def go_json_string(s: str) -> str:
    """``s`` as Go's ``encoding/json`` quotes it (with HTML escaping on, its default)."""
    return '"' + _NEEDS_ESCAPE.sub(_escape_char, s) + '"'


def clean_name(name: str) -> str:
    """Go's ``filepath.Clean`` (used for the duplicate-path check)."""
    return posixpath.normpath(name) if name else "."


def _write_behind(out: BinaryIO, work: queue.Queue[bytes | None], errors: list[BaseException]) -> None:
    """The writer thread: its output's compressor and file writes release the GIL, so they
    run beside the extraction instead of in it. It holds no reference to the writer."""
    while (chunk := work.get()) is not None:
        if not errors:
            try:
                out.write(chunk)
            except BaseException as exc:  # handed to the writer's next call
                errors.append(exc)


class TarSplitWriter:
    """Writes tar-split entries to a binary file object (the caller compresses it).

    Entries are batched a MiB at a time and written by a thread: the output is normally a
    ``GzipFile``, whose deflate would otherwise sit on the extraction's own thread. ``flush``
    waits until everything is written, and raises what writing raised."""

    _FLUSH = 1 << 20

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._pos = 0
        self._seen: set[str] = set()
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._work: queue.Queue[bytes | None] | None = None
        self._thread: threading.Thread | None = None
        self._errors: list[BaseException] = []

    def _emit(self, line: bytes) -> None:
        self._pending.append(line)
        self._pending_size += len(line)
        if self._pending_size >= self._FLUSH:
            self._handoff()

    def _handoff(self) -> None:
        """Queue the batch for the writer thread (started on the first full batch)."""
        if self._errors:
            raise self._errors[0]
        if self._work is None:
            self._work = queue.Queue(4)
            self._thread = threading.Thread(target=_write_behind, args=(self._out, self._work, self._errors),
                                            name="cs-tar-split", daemon=True)
            self._thread.start()
            # An abandoned writer (the apply failed) still ends its thread.
            weakref.finalize(self, self._work.put, None)
        self._work.put(b"".join(self._pending))
        self._pending.clear()
        self._pending_size = 0

    def _join(self) -> None:
        if self._work is not None and self._thread is not None:
            self._work.put(None)
            self._thread.join()
        self._work = self._thread = None

    def discard(self) -> None:
        """Stop writing (the stream failed): nothing more reaches the output after this."""
        self._pending.clear()
        self._pending_size = 0
        self._errors.append(UnsafeArchive("tar-split writer discarded"))  # the thread skips the rest
        self._join()

    def flush(self) -> None:
        """Write everything recorded so far to the output (also done when the stream ends)."""
        try:
            if self._pending and self._work is not None:
                self._handoff()
            elif self._pending and not self._errors:
                self._out.write(b"".join(self._pending))
                self._pending.clear()
                self._pending_size = 0
        finally:
            self._join()
        if self._errors:
            raise self._errors[0]

    def add_segment(self, payload: bytes) -> None:
        line = b'{"type":2,"payload":"%s","position":%d}\n' % (b2a_base64(payload, newline=False), self._pos)
        self._pos += 1
        self._pending.append(line)
        self._pending_size += len(line)
        if self._pending_size >= self._FLUSH:
            self._handoff()

    def add_file(self, name: bytes, size: int, crc: int | None, segment: bytes = b"") -> None:
        """A file entry; ``crc`` is the CRC-64 of its content (None when ``size`` is 0).

        A non-empty ``segment`` is recorded first, as :meth:`add_segment` would: one line
        pair per entry is the common shape, built in one go."""
        if name.isascii() and _NEEDS_ESCAPE_ASCII.search(name) is None:
            # The usual name: JSON-quoted as it is, without decoding and escaping it.
            check = name.decode("ascii")
            name_json = b'"name":"' + name + b'",' if name else b""
        else:
            check, name_json = _name_json(name)
        bare = check[2:] if check.startswith("./") else check
        if "//" in bare or "/." in bare or bare.startswith(".") or bare.endswith("/") or not bare:
            cleaned = clean_name(check)
        else:
            cleaned = bare  # already what filepath.Clean would give
        if cleaned in self._seen:
            raise UnsafeArchive("duplicates of file paths not supported")
        self._seen.add(cleaned)
        payload = b"null" if crc is None else b'"' + b2a_base64(crc.to_bytes(8, "big"), newline=False) + b'"'
        pos = self._pos
        if segment:
            line = b'{"type":2,"payload":"%s","position":%d}\n{"type":1,%s%s"payload":%s,"position":%d}\n' % (
                b2a_base64(segment, newline=False), pos, name_json, b'"size":%d,' % size if size else b"",
                payload, pos + 1)
            self._pos = pos + 2
        else:
            line = b'{"type":1,%s%s"payload":%s,"position":%d}\n' % (
                name_json, b'"size":%d,' % size if size else b"", payload, pos)
            self._pos = pos + 1
        self._pending.append(line)
        self._pending_size += len(line)
        if self._pending_size >= self._FLUSH:
            self._handoff()


def _name_json(name: bytes) -> tuple[str, bytes]:
    """The name as text (for the duplicate check) and its JSON member, as Go writes it."""
    try:
        text = name.decode("utf-8")
    except UnicodeDecodeError:
        return (name.decode("utf-8", "surrogateescape"),
                b'"name_raw":"%s",' % b2a_base64(name, newline=False))
    return text, (f'"name":{go_json_string(text)},'.encode() if text else b"")


@recordclass.frozen
class TarSplitEntry:
    type: int
    name: bytes
    size: int
    payload: bytes | None
    position: int

    @property
    def name_str(self) -> str:
        return self.name.decode("utf-8", "surrogateescape")


def _entry(obj: Any) -> TarSplitEntry:
    if not isinstance(obj, dict):
        raise UnsafeArchive("tar-split: entry is not an object")
    try:
        kind = int(obj.get("type", 0))
        raw = obj.get("name_raw")
        name = base64.b64decode(raw) if raw else str(obj.get("name") or "").encode("utf-8", "surrogateescape")
        payload = obj.get("payload")
        data = base64.b64decode(payload) if payload is not None else None
        size = int(obj.get("size") or 0)
        position = int(obj.get("position") or 0)
    except (ValueError, TypeError) as exc:
        raise UnsafeArchive(f"tar-split: malformed entry: {exc}") from None
    if kind not in (FILE_TYPE, SEGMENT_TYPE) or size < 0:
        raise UnsafeArchive("tar-split: malformed entry")
    return TarSplitEntry(kind, name, size, data, position)


_SEG_HEAD = b'{"type":2,"payload":"'
_SEG_MID = b'","position":'


def _fast_segment(line: bytes) -> TarSplitEntry | None:
    """Segments exactly as Go writes them, without a JSON parser (most of a record); else None."""
    if not line.startswith(_SEG_HEAD) or not line.endswith(b"}"):
        return None
    mid = line.find(_SEG_MID, len(_SEG_HEAD))
    if mid < 0:
        return None
    position = line[mid + len(_SEG_MID):-1]
    if not position.isdigit():
        return None
    try:
        payload = base64.b64decode(line[len(_SEG_HEAD):mid], validate=True)
    except ValueError:
        return None
    return TarSplitEntry(SEGMENT_TYPE, b"", 0, payload, int(position))


def iter_tar_split(tar_split: BinaryIO) -> Iterator[TarSplitEntry]:
    """The entries of a (decompressed) tar-split stream, rejecting duplicate file paths as Go."""
    seen: set[str] = set()
    for line in tar_split:
        line = line.strip()
        if not line:
            continue
        entry = _fast_segment(line)
        if entry is None:
            try:
                obj = json.loads(line)
            except ValueError as exc:
                raise UnsafeArchive(f"tar-split: {exc}") from None
            entry = _entry(obj)
        if entry.type == FILE_TYPE:
            cleaned = clean_name(entry.name_str)
            if cleaned in seen:
                raise UnsafeArchive("duplicates of file paths not supported")
            seen.add(cleaned)
        yield entry


def reassemble(tar_split: BinaryIO, open_file: Callable[[str], BinaryIO], out: BinaryIO) -> int:
    """Rebuild the original tar from its tar-split record and the files; returns bytes written.

    No byte of a file whose size or CRC-64 disagrees with the record is written: the size is
    checked with ``fstat`` before reading, and the CRC before the bytes go out (see ``_emit_file``).
    """
    written = 0
    buf = bytearray(_COPY)
    for entry in iter_tar_split(tar_split):
        if entry.type == SEGMENT_TYPE:
            if entry.payload:
                out.write(entry.payload)
                written += len(entry.payload)
            continue
        if entry.size == 0:
            continue
        if entry.payload is None or len(entry.payload) != 8:
            raise UnsafeArchive(f'tar-split: no checksum for "{entry.name_str}"')
        try:
            fh = open_file(entry.name_str)
        except OSError as exc:
            raise UnsafeArchive(f'reading "{entry.name_str}" in the layer: {exc.strerror}') from None
        with fh:
            _emit_file(fh, entry, struct.unpack(">Q", entry.payload)[0], out, buf)
        written += entry.size
    return written


# Files up to this size are read whole into memory, checked, then written; bigger ones are read
# twice (the second read mostly from the page cache), so memory stays bounded for any layer.
_WHOLE = 8 << 20


def _integrity_error(entry: TarSplitEntry) -> UnsafeArchive:
    return UnsafeArchive(f'file integrity checksum failed for "{entry.name_str}"')


def _read_full(fh: BinaryIO, view: memoryview) -> None:
    got = 0
    while got < len(view):
        n = fh.readinto(view[got:])  # type: ignore[attr-defined]
        if not n:
            raise UnsafeArchive("file shrank while the layer was read")
        got += n


def _emit_file(fh: BinaryIO, entry: TarSplitEntry, want: int, out: BinaryIO, buf: bytearray) -> None:
    """Write exactly ``entry.size`` bytes of ``fh`` to ``out``, only once they match ``want``.

    A big file's first pass records the running CRC after every chunk; the second pass writes
    a chunk only if the running CRC over it is the same, so bytes that changed between the
    passes (a file being rewritten) are not emitted either.
    """
    size = entry.size
    st = os.fstat(fh.fileno())
    if not stat.S_ISREG(st.st_mode) or st.st_size != size:
        raise _integrity_error(entry)
    if size <= _WHOLE:
        data = bytearray(size) if size > len(buf) else buf
        view = memoryview(data)[:size]
        _read_full(fh, view)
        if crc64(view) != want:
            raise _integrity_error(entry)
        out.write(view)
        return
    view = memoryview(buf)
    marks: list[int] = []
    crc: int | None = None
    for chunk in _chunks(fh, view, size):
        crc = crc64(chunk) if crc is None else crc64(chunk, crc)
        marks.append(crc)
    if crc != want:
        raise _integrity_error(entry)
    fh.seek(0)
    crc = None
    for i, chunk in enumerate(_chunks(fh, view, size)):
        crc = crc64(chunk) if crc is None else crc64(chunk, crc)
        if crc != marks[i]:
            raise _integrity_error(entry)
        out.write(chunk)


def _chunks(fh: BinaryIO, view: memoryview, size: int) -> Iterator[memoryview]:
    left = size
    while left:
        chunk = view[: min(left, len(view))]
        _read_full(fh, chunk)
        left -= len(chunk)
        yield chunk
