"""The machinery shared by the layer, image and container record stores.

A record store keeps one kind of record in one or two JSON files (stable and volatile) under
one lock file. Every public operation runs inside ``reading()`` or ``writing()``, which take
the lock and reload from disk when another process (ours or Go) recorded a write since we
last looked. Writers record a fresh token *before* rewriting the JSON, as Go does, so a crash
between the two still makes other processes reload.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Generic, TypeVar

from cs_core import atomic, codec, lazylog, lockfile
from cs_core.errors import (
    CorruptRecordFile,
    DuplicateID,
    DuplicateName,
    InvalidID,
    StorageError,
    StoreIsReadOnly,
)
from cs_core.records.bigdata import BigDataFiles
from cs_core.records.multilock import LockGroup
from cs_core.records.rawfile import Proofs, RawFile, encode_record, has_layout
from cs_core.records.views import RawView

log = lazylog.getLogger(__name__)

R = TypeVar("R")

#: A search that hits more records than this decodes the whole store instead.
MAX_CANDIDATES = 64


def check_id(value: str, what: str = "ID") -> str:
    """``value`` if it is safe as an ID, else :class:`InvalidID`.

    IDs name directories and files in the store (``<id>/``, ``<id>.tar-split.gz``), so an ID
    must be one path component: Go 1.43 takes any ``--id``, and ``../../x`` makes it write, and
    later remove, directories outside the store. Everything else Go accepts (spaces, capitals,
    any length the filesystem takes) is kept, so existing stores still load.
    """
    if value in ("", ".", "..") or "/" in value or "\0" in value:
        raise InvalidID(f"{what} {json.dumps(value)} must be one path component, "
                        "not empty, \".\" or \"..\"")
    return value


def generate_id(taken: Callable[[str], bool] = lambda _id: False) -> str:
    """A random 64-hex ID, never all-decimal in its first 12 chars (Go ``stringid``)."""
    while True:
        candidate = os.urandom(32).hex()  # secrets.token_hex, without importing secrets
        if candidate[:12].isdigit():
            continue
        if not taken(candidate):
            return candidate


def dedupe(names: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for name in names:
        if name not in seen:
            seen.add(name)
            out.append(name)
    return out


class RecordFile:
    """One JSON file of records with its durability mode."""

    def __init__(self, path: Path, *, volatile: bool = False) -> None:
        self.path = path
        self.volatile = volatile
        self.mtime_ns: int | None = None


class RecordStore(BigDataFiles, Generic[R]):
    """Records of one kind, indexed by ID, name and unique ID prefix."""

    kind = "record"
    record_cls: type[R]
    unknown_error: type[StorageError] = StorageError
    #: Whether name lookups may also match a container's layer ID (containers only).
    lookup_extra: Callable[[R], Iterable[str]] | None = None

    def __init__(
        self, directory: Path, files: Sequence[RecordFile],
        lock: lockfile.LockFile | LockGroup, *, read_only: bool = False,
    ) -> None:
        self.directory = directory
        self.files = list(files)
        self.lock = lock
        self.read_only = read_only
        #: Where proofs of canonical files are kept (the run root); None: never used raw.
        self.proofs: Proofs | None = None
        self._records: list[R] = []
        self._by_id: dict[str, R] = {}
        self._by_name: dict[str, R] = {}
        self._sorted_ids: list[str] | None = None
        # Raw mode (rawfile.py): the proven files' bytes, and the records decoded from them
        # or added since, by ID, with the file each came from (None: added, not yet saved).
        self._raw: dict[RecordFile, RawFile] | None = None
        self._seen: dict[str, R] = {}
        self._origin: dict[str, RecordFile | None] = {}
        self._gone: set[str] = set()
        self._token: bytes | None = None
        self._loaded = False
        self._staged: list[tuple[Path, Path, bool]] = []

    # -- the records, decoded when asked for -------------------------------------------------

    @property
    def records(self) -> list[R]:
        """Every record (in raw mode, decoding them all: prefer the lookups)."""
        self._materialise()
        return self._records

    @records.setter
    def records(self, value: list[R]) -> None:
        self._materialise()
        self._records = value

    @property
    def by_id(self) -> Mapping[str, R]:
        return self._by_id if self._raw is None else RawView(self._raw_by_id, self._decoded_by_id)

    @property
    def by_name(self) -> Mapping[str, R]:
        return self._by_name if self._raw is None else RawView(self._raw_by_name,
                                                               self._decoded_by_name)

    def _decoded_by_id(self) -> Mapping[str, R]:
        self._materialise()
        return self._by_id

    def _decoded_by_name(self) -> Mapping[str, R]:
        self._materialise()
        return self._by_name

    def _materialise(self) -> None:
        """Leave raw mode: decode every record not decoded yet, keeping those handed out."""
        raw = self._raw
        if raw is None:
            return
        records: list[R] = []
        with codec.paused_gc():
            for f in self.files:
                held = raw.get(f)
                if held is None:
                    continue
                for record in codec.loads_records(held.data, self.record_cls, str(f.path)):
                    rid: str = record.id  # type: ignore[attr-defined]
                    if rid in self._gone or self._origin.get(rid, f) is not f:
                        continue
                    if rid in self._seen:
                        records.append(self._seen[rid])
                        continue
                    self._mark_loaded(record, f)
                    records.append(record)
        records.extend(r for rid, r in self._seen.items() if self._origin[rid] is None)
        self._raw = None
        self._seen, self._origin, self._gone = {}, {}, set()
        self._index(records)

    def _decode_at(self, f: RecordFile, held: RawFile, start: int) -> R | None:
        """The record of ``f`` starting at ``start`` (the one handed out before, if any);
        None if it was removed since."""
        data = held.record_bytes(start)
        [record] = codec.loads_records(b"[" + data + b"]", self.record_cls, str(f.path))
        rid: str = record.id  # type: ignore[attr-defined]
        if rid in self._gone:
            return None
        if rid in self._seen:
            return self._seen[rid]
        self._mark_loaded(record, f)
        self._seen[rid] = record
        self._origin[rid] = f
        return record

    def _raw_by_id(self, rid: str) -> R | None:
        if self._raw is None:
            return self._by_id.get(rid)
        if rid in self._seen:
            return self._seen[rid]
        if rid in self._gone:
            return None
        for f, held in self._raw.items():
            start = held.find_id(rid)
            if start is not None:
                return self._decode_at(f, held, start)
        return None

    def mentioning(self, value: str) -> list[R]:
        """Records that may hold ``value`` as a string (every record when not raw), in file
        order: callers filter them as they would filter ``records``."""
        if self._raw is None:
            return self._records
        found: list[R] = []
        for f, held in self._raw.items():
            starts = held.mentioning(value)
            if len(starts) > MAX_CANDIDATES:
                self._materialise()
                return self._records
            for start in starts:
                record = self._decode_at(f, held, start)
                if record is not None:
                    found.append(record)
        # Records changed in memory may hold it where their bytes do not yet.
        ids = {id(r) for r in found}
        found.extend(r for r in self._seen.values() if id(r) not in ids)
        return found

    def _raw_by_name(self, name: str) -> R | None:
        if self._raw is None:
            return self._by_name.get(name)
        for record in self.mentioning(name):
            if name in record.names:  # type: ignore[attr-defined]
                return record
        return None

    # -- locking and reloading ---------------------------------------------------------------

    @contextlib.contextmanager
    def reading(self) -> Iterator[None]:
        self.lock.rlock()
        try:
            self._reload_if_changed(writing=False)
            yield
        finally:
            self.lock.unlock()

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        if self.read_only:
            raise StoreIsReadOnly(f"not allowed to modify the {self.kind} store at {self.directory}")
        self.lock.lock()
        try:
            self._reload_if_changed(writing=True)
            yield
        finally:
            self._discard_staged()
            self.lock.unlock()

    def _files_changed(self) -> bool:
        for f in self.files:
            try:
                mtime: int | None = f.path.stat().st_mtime_ns
            except FileNotFoundError:
                mtime = None
            if mtime != f.mtime_ns:
                return True
        return False

    def _reload_if_changed(self, *, writing: bool) -> None:
        token = self.lock.read_token()
        if self._loaded and token == self._token and not self._files_changed():
            return
        self.load(writing=writing)
        self._token = token

    def load(self, *, writing: bool) -> None:
        """Read every file; fix what Go fixes on load (duplicate names) when writing."""
        # Until this load succeeds, what we hold is no longer known to match the disk: a
        # damaged file must keep failing every use, not be served (or saved) from memory.
        self._loaded = False
        with codec.paused_gc():  # see there: the records built here are many, and acyclic
            needs_save = self._load_files()
        if not self.read_only:
            self._recover_staged()
        if needs_save:
            if self.read_only or not writing:
                from cs_core.errors import DuplicateImageNames, DuplicateLayerNames

                if self.kind == "image":
                    raise DuplicateImageNames(str(self.directory))
                if self.kind == "layer":
                    raise DuplicateLayerNames(str(self.directory))
            else:
                self.save()
        self._loaded = True
        self.after_load(writing=writing)

    def loaded_records(self) -> list[R]:
        """The records decoded so far (all of them when not in raw mode)."""
        return self._records if self._raw is None else list(self._seen.values())

    def raw_contains(self, needle: bytes) -> bool:
        """In raw mode, whether any file's bytes hold ``needle`` (False when not raw)."""
        return self._raw is not None and any(needle in held.data for held in self._raw.values())

    def _load_files(self) -> bool:
        """Read and index every file; True if duplicate names had to be resolved."""
        contents: dict[RecordFile, bytes] = {}
        for f in self.files:
            try:
                st = f.path.stat()
                data = f.path.read_bytes()
                f.mtime_ns = st.st_mtime_ns
            except FileNotFoundError:
                f.mtime_ns = None
                continue
            except OSError as exc:
                raise CorruptRecordFile.in_file(f.path, f"reading {f.path}: {exc.strerror}") from exc
            contents[f] = data
        self._raw, self._seen, self._origin, self._gone = None, {}, {}, set()
        if self._all_proven(contents):
            self._raw = {f: RawFile(data) for f, data in contents.items()}
            self._records, self._by_id, self._by_name, self._sorted_ids = [], {}, {}, None
            return False
        records: list[R] = []
        per_file: list[tuple[RecordFile, bytes, list[R]]] = []
        for f, data in contents.items():
            loaded = codec.loads_records(data, self.record_cls, str(f.path))
            for record in loaded:
                self._check_path_ids(record, f.path)
            for record in loaded:
                self._mark_loaded(record, f)
            records.extend(loaded)
            per_file.append((f, data, loaded))
        fixed = self._index(records)
        if not fixed:
            self._prove(per_file)
        return fixed

    def _all_proven(self, contents: dict[RecordFile, bytes]) -> bool:
        """Whether raw mode may be used: every file proven canonical, or a volatile one absent
        (an absent stable file is written as ``[]`` by a save, as before)."""
        if self.proofs is None:
            return False
        for f in self.files:
            data = contents.get(f)
            if data is None:
                if not f.volatile:
                    return False
            elif not self.proofs.lookup(f.path, data):
                return False
        return True

    def _prove(self, per_file: list[tuple[RecordFile, bytes, list[R]]]) -> None:
        """Remember which of the files just decoded hold exactly what we would write."""
        if self.proofs is None:
            return
        for f, data, loaded in per_file:
            if self.proofs.lookup(f.path, data) is not None:
                continue  # known either way: do not encode again to find out
            canonical = has_layout(data, len(loaded)) and codec.dumps_records(loaded) == data
            self.proofs.record(f.path, data, canonical)

    def path_ids(self, record: R) -> list[str]:
        """Hook: the record's IDs that become paths (its own, and those it refers to)."""
        return [record.id]  # type: ignore[attr-defined]

    def _check_path_ids(self, record: R, path: Path) -> None:
        # A hand-edited or hostile file must not steer writes or removals out of the store.
        for value in self.path_ids(record):
            try:
                check_id(value)
            except InvalidID:
                raise CorruptRecordFile.in_file(
                    path, f"loading {path}: {self.kind} record has an unsafe ID {json.dumps(value)}"
                ) from None

    def _mark_loaded(self, record: R, source: RecordFile) -> None:
        """Hook: note per-record facts from where it was loaded (volatile, read-only)."""

    def after_load(self, *, writing: bool) -> None:
        """Hook: kind-specific work after a (re)load, e.g. incomplete-layer cleanup."""

    def _index(self, records: list[R]) -> bool:
        """Rebuild indexes. Returns True if duplicate names had to be resolved."""
        by_id: dict[str, R] = {}
        by_name: dict[str, R] = {}
        fixed = False
        for record in records:
            rid: str = record.id  # type: ignore[attr-defined]
            by_id[rid] = record
            for name in list(record.names):  # type: ignore[attr-defined]
                holder = by_name.get(name)
                if holder is not None and holder is not record:
                    # Go keeps the name on the later record.
                    holder.names.remove(name)  # type: ignore[attr-defined]
                    fixed = True
                by_name[name] = record
        self._records = records
        self._by_id = by_id
        self._by_name = by_name
        self._sorted_ids = None  # sorted when a prefix is first looked up
        return fixed

    def reindex(self) -> None:
        if self._raw is None:  # raw lookups read the records themselves: nothing to rebuild
            self._index(self._records)

    def save(self, *, sync_dir: bool = True) -> None:
        """Record a write on the lock, then rewrite every file atomically (``sync_dir``: see
        ``atomic.write_file``)."""
        if self.read_only:
            raise StoreIsReadOnly(f"not allowed to modify the {self.kind} store at {self.directory}")
        if not self.lock.locked_for_writing:
            raise RuntimeError(f"{self.kind} store is not locked for writing")
        try:
            self._token = self.lock.record_write()
            if self._raw is not None and self._save_raw(sync_dir):
                self._commit_staged()
                return
            self._materialise()
            for f in self.files:
                chosen = [r for r in self._records if self._file_for(r) is f]
                if f.volatile and not chosen and not f.path.exists():
                    continue
                data = codec.dumps_records(chosen)
                self._write(f, data, sync_dir)
                if self.proofs is not None:
                    self.proofs.record(f.path, data, has_layout(data, len(chosen)))
            self._commit_staged()
        except BaseException:
            # Memory now differs from disk (e.g. the disk is full): the next use reloads.
            self._loaded = False
            raise

    def _write(self, f: RecordFile, data: bytes, sync_dir: bool) -> None:
        f.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        atomic.write_file(f.path, data, 0o600, durable=not f.volatile, sync_dir=sync_dir)
        f.mtime_ns = f.path.stat().st_mtime_ns

    def _save_raw(self, sync_dir: bool) -> bool:
        """Save by splicing (rawfile.py); False, having written nothing, if a record does not
        fit that (it would break the layout, or it moved to another file)."""
        assert self._raw is not None
        edits: dict[RecordFile, dict[int, bytes | None]] = {f: {} for f in self.files}
        added: dict[RecordFile, list[bytes]] = {f: [] for f in self.files}
        for rid, record in self._seen.items():
            origin, target = self._origin[rid], self._file_for(record)
            if origin is not None and origin is not target:
                return False
            data = encode_record(record)
            if data is None:
                return False
            if origin is None:
                added[target].append(data)
                continue
            start = self._raw[origin].find_id(rid)
            assert start is not None, rid
            if self._raw[origin].record_bytes(start) != data:
                edits[origin][start] = data
        for rid in self._gone:
            for f, held in self._raw.items():
                start = held.find_id(rid)
                if start is not None:
                    edits[f][start] = None
        for f in self.files:
            if not edits[f] and not added[f] and (f in self._raw or f.volatile):
                continue  # unchanged (or still empty): Go too writes only what changed
            held = self._raw.get(f, RawFile(b"[]"))
            data = held.splice(edits[f], added[f])
            self._write(f, data, sync_dir)
            self._raw[f] = RawFile(data)
            assert self.proofs is not None
            self.proofs.record(f.path, data, True)
        for rid, origin in list(self._origin.items()):
            if origin is None:
                self._origin[rid] = self._file_for(self._seen[rid])
        self._gone = set()
        return True

    def _file_for(self, record: R) -> RecordFile:
        return self.files[0]

    # -- lookups -----------------------------------------------------------------------------

    def lookup(self, ref: str) -> R | None:
        """Find by exact ID, then name, then kind-specific keys, then unique ID prefix."""
        if not ref:
            return None
        found = self._raw_by_id(ref)
        if found is not None:
            return found
        found = self._raw_by_name(ref)
        if found is not None:
            return found
        if self.lookup_extra is not None:
            for record in self.mentioning(ref):
                if ref in self.lookup_extra(record):
                    return record
        if self._raw is not None:
            return self._raw_by_prefix(ref)
        if self._sorted_ids is None:
            self._sorted_ids = sorted(i for i in self._by_id if " " not in i)
        i = bisect.bisect_left(self._sorted_ids, ref)
        if i < len(self._sorted_ids) and self._sorted_ids[i].startswith(ref):
            if i + 1 < len(self._sorted_ids) and self._sorted_ids[i + 1].startswith(ref):
                return None  # ambiguous
            return self._by_id[self._sorted_ids[i]]
        return None

    def _raw_by_prefix(self, prefix: str) -> R | None:
        assert self._raw is not None
        matches: dict[str, R] = {
            rid: r for rid, r in self._seen.items() if rid.startswith(prefix) and " " not in rid
        }
        for f, held in self._raw.items():
            for start in held.id_prefix(prefix):
                if len(matches) > 1:
                    return None  # ambiguous
                record = self._decode_at(f, held, start)
                if record is not None and " " not in record.id:  # type: ignore[attr-defined]
                    matches[record.id] = record  # type: ignore[attr-defined]
        return next(iter(matches.values())) if len(matches) == 1 else None

    def get(self, ref: str) -> R:
        record = self.lookup(ref)
        if record is None:
            raise self.unknown_error()
        return record

    def exists(self, ref: str) -> bool:
        return self.lookup(ref) is not None

    def new_id(self, requested: str | None) -> str:
        if requested:
            check_id(requested)
            if self._raw_by_id(requested) is not None:
                raise DuplicateID()
            return requested
        return generate_id(lambda c: self._raw_by_id(c) is not None)

    def check_names_free(self, names: Sequence[str]) -> None:
        for name in names:
            if self._raw_by_name(name) is not None:
                raise DuplicateName()

    # -- adding and removing (caller holds the write lock and calls save) --------------------

    def add(self, record: R) -> None:
        rid: str = record.id  # type: ignore[attr-defined]
        if self._raw is not None:
            # A removed record added again keeps its place in _gone: like the decoded list,
            # the file loses it where it was and gets it at the end.
            self._seen[rid] = record
            self._origin[rid] = None
            return
        self._records.append(record)
        self._by_id[rid] = record
        for name in record.names:  # type: ignore[attr-defined]
            self._by_name[name] = record
        if " " not in rid and self._sorted_ids is not None:
            bisect.insort(self._sorted_ids, rid)

    def remove(self, record: R) -> None:
        if self._raw is not None:
            rid: str = record.id  # type: ignore[attr-defined]
            if self._seen.get(rid) is record:
                del self._seen[rid]
                if self._origin.pop(rid) is not None:
                    self._gone.add(rid)
            return
        self._records = [r for r in self._records if r is not record]
        self.reindex()

    def update_names(self, record: R, names: Sequence[str], op: str) -> None:
        """Apply a name operation (set / add / remove), moving names from other records."""
        names = dedupe(names)
        current: list[str] = record.names  # type: ignore[attr-defined]
        if op == "set":
            new = names
        elif op == "add":
            # Go 1.43's CLI appends; HEAD puts new names first. We follow HEAD (see notes).
            new = dedupe([*names, *current])
        elif op == "remove":
            new = [n for n in current if n not in names]
        else:
            raise ValueError(op)
        for name in new:
            holder = self._raw_by_name(name)
            if holder is not None and holder is not record:
                holder.names.remove(name)  # type: ignore[attr-defined]
        record.names = new  # type: ignore[attr-defined]
        self.reindex()

def ensure_dir(path: Path, mode: int = 0o700) -> Path:
    os.makedirs(path, mode=mode, exist_ok=True)
    return path


def unknown_fields(data: dict[str, Any], known: set[str]) -> list[str]:
    return [k for k in data if k not in known]
