"""Record files used through their bytes, so a command's cost does not grow with the store.

Every command that touches one layer used to decode every record of ``layers.json`` and encode
them all again to save it: at 10,000 items that was most of a command's time (issue 13 item 2;
numbers in NOTES.md). A file whose bytes are exactly what ``codec.dumps_records`` writes for
its records ("proven", see :class:`Proofs`) is instead kept as bytes:

* In our (and Go's) encoding every record is an object whose first key is ``id``, so with
  ``{"id":`` occurring nowhere else (checked when the file is proven) each occurrence starts a
  record and a record ends where the next begins. A record is found by its ID, or by any
  string value it holds, with a substring search, and only that record is decoded.
* Saving splices: untouched records are copied as bytes (they are already what we would
  write), changed and new ones are encoded.

Searches use the value as our encoder writes it, which for a proven file is exactly how the
file spells it; a hit is only a candidate, confirmed on the decoded record. Anything else (a
file not proven, a record whose encoding would break the layout) takes the full path.
"""

from __future__ import annotations

import contextlib
import json
import zlib
from pathlib import Path

from cs_core import atomic, codec

#: How every record starts, and nothing else does, in a proven file.
RECORD_START = b'{"id":'


def encoded(value: str) -> bytes:
    """``value`` as a JSON string, spelled as our encoder (and Go's) writes it."""
    return codec.go_json_dumps(value).encode()


def has_layout(data: bytes, count: int) -> bool:
    """Whether ``data``, holding ``count`` records, starts each of them with RECORD_START and
    holds it nowhere else (a flags map can hold an object keyed "id")."""
    return data.count(RECORD_START) == count and (count > 0 or data == b"[]")


class Proofs:
    """Which contents of record files are known to be canonical, kept in the run root.

    A proof names the file and its contents' size and CRC-32, so it holds only for those
    exact bytes: any other writer (Go, a hand edit) makes it stale, and the next load decodes
    in full (and proves the new contents when they are canonical). A lost or damaged proof
    costs only that full load. "Not canonical" is remembered too, so a file we cannot use
    this way is not re-encoded on every load just to find that out again.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, target: Path) -> Path:
        return self.directory / str(target).strip("/").replace("/", "%")

    @staticmethod
    def _stamp(target: Path, data: bytes, canonical: bool) -> dict[str, object]:
        return {"path": str(target), "size": len(data), "crc32": zlib.crc32(data),
                "canonical": canonical}

    def lookup(self, target: Path, data: bytes) -> bool | None:
        """True if proven canonical, False if known not to be, None if not known."""
        try:
            stamp = json.loads(self._path(target).read_bytes())
        except (OSError, ValueError):
            return None
        if not isinstance(stamp, dict):
            return None
        canonical = stamp.get("canonical")
        if not isinstance(canonical, bool):
            return None
        if stamp != self._stamp(target, data, canonical):
            return None
        return canonical

    def record(self, target: Path, data: bytes, canonical: bool) -> None:
        # A cache: not fsynced, and a failure (a read-only run root) only costs speed.
        with contextlib.suppress(OSError):
            atomic.makedirs(self.directory)
            atomic.write_file(self._path(target),
                              json.dumps(self._stamp(target, data, canonical)).encode(),
                              0o600, durable=False)


class RawFile:
    """The bytes of one proven record file."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def end_of(self, start: int) -> int:
        """Where the record starting at ``start`` ends (the ``,`` or ``]`` after it)."""
        nxt = self.data.find(b"," + RECORD_START, start + 1)
        return len(self.data) - 1 if nxt < 0 else nxt

    def record_bytes(self, start: int) -> bytes:
        return self.data[start:self.end_of(start)]

    def find_id(self, record_id: str) -> int | None:
        """Where the record with this ID starts."""
        probe = RECORD_START + encoded(record_id)
        at = self.data.find(probe)
        while at >= 0:
            if self.data[at + len(probe):at + len(probe) + 1] in (b",", b"}"):
                return at
            at = self.data.find(probe, at + 1)
        return None

    def id_prefix(self, prefix: str) -> list[int]:
        """Starts of the records whose ID starts with ``prefix``."""
        probe = RECORD_START + encoded(prefix)[:-1]  # without the closing quote
        found = []
        at = self.data.find(probe)
        while at >= 0:
            found.append(at)
            at = self.data.find(probe, at + 1)
        return found

    def mentioning(self, value: str) -> list[int]:
        """Starts of the records holding ``value`` as a string anywhere (a superset)."""
        probe = encoded(value)
        starts: list[int] = []
        at = self.data.find(probe)
        while at >= 0:
            start = self.data.rfind(RECORD_START, 0, at + 1)
            if start >= 0 and (not starts or starts[-1] != start):
                starts.append(start)
            at = self.data.find(probe, at + 1)
        return starts

    def splice(self, edits: dict[int, bytes | None], added: list[bytes]) -> bytes:
        """The file with the records at the given starts replaced (``None``: removed) and
        ``added`` appended; untouched records are copied as they are."""
        view = memoryview(self.data)  # slices without copies: only the join copies
        items: list[bytes | memoryview] = []
        cursor = 1  # just after "["
        for start in sorted(edits):
            if start - 1 > cursor:
                items.append(view[cursor:start - 1])  # whole records between edits
            new = edits[start]
            if new is not None:
                items.append(new)
            cursor = self.end_of(start) + 1
        if len(self.data) - 1 > cursor:
            items.append(view[cursor:len(self.data) - 1])
        items.extend(added)
        return b"[" + b",".join(items) + b"]"


def encode_record(record: object) -> bytes | None:
    """One record as it appears in a file, or None if it would break the layout."""
    data = codec.dumps_records([record])[1:-1]
    if not data.startswith(RECORD_START) or data.count(RECORD_START) != 1:
        return None
    return data
