"""Big-data items of a record store: one file per item in ``<store>/<record id>/``.

Image and container records carry each item's size and digest, so the file and the record
must never disagree after a crash; :meth:`BigDataFiles.stage_big_data` is how writers keep
them in step. A mixin of :class:`cs_core.records.base.RecordStore`, apart so that the store
machinery and the file handling each fit on a page.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
from pathlib import Path
from typing import Any

from cs_core import atomic, lazylog
from cs_core.errors import InvalidBigDataName

log = lazylog.getLogger(__name__)

_BIG_DATA_PLAIN = re.compile(r"^[.0-9a-z]+$")

#: Where image and container big data wait until the record that describes them is saved.
PENDING_DIR = ".cs-pending"


def big_data_file_name(key: str) -> str:
    """File name for a big-data key, as Go's ``makeBigDataBaseName``."""
    if not key:
        raise InvalidBigDataName("can't set empty name for big data item")
    if key in (".", ".."):
        # Plain names pass through as file names: these two would name the record's
        # directory or its parent (Go would try to write over them).
        raise InvalidBigDataName(f"can't use {key!r} as the name of a big data item")
    if _BIG_DATA_PLAIN.match(key):
        return key
    return "=" + base64.standard_b64encode(key.encode()).decode()


def sha256_digest(data: bytes) -> str:
    import hashlib  # here: with OpenSSL, ~2.5 ms of every CLI process otherwise

    return "sha256:" + hashlib.sha256(data).hexdigest()


class BigDataFiles:
    """The big-data files of the records in ``directory`` (Go ``bigDataDir``)."""

    directory: Path
    kind: str
    _staged: list[tuple[Path, Path, bool]]

    def _raw_by_id(self, rid: str) -> Any:
        raise NotImplementedError  # the record store finds the record

    def data_dir(self, record_id: str) -> Path:
        return self.directory / record_id

    def data_path(self, record_id: str, key: str) -> Path:
        return self.data_dir(record_id) / big_data_file_name(key)

    def read_big_data(self, record_id: str, key: str) -> bytes:
        try:
            return self.data_path(record_id, key).read_bytes()
        except FileNotFoundError as exc:
            raise FileNotFoundError(
                f"getting big data {key!r} for {self.kind} {record_id}: no such file"
            ) from exc

    def write_big_data(self, record_id: str, key: str, data: bytes, *, durable: bool = True) -> None:
        path = self.data_path(record_id, key)
        if durable:
            atomic.makedirs_durable(path.parent)
        else:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        atomic.write_file(path, data, 0o600, durable=durable)

    # Image and container records carry each item's size and digest, so replacing the file
    # first and the record second (Go's order) leaves a mismatch if we die in between, which
    # check reports as damage. Instead the new bytes are written (durably) to PENDING_DIR,
    # the record is saved, and only then renamed into place. After a crash, the next load
    # finishes the rename if the saved record describes the pending bytes (the operation had
    # reached its commit point) and deletes them otherwise; either way data and record agree.

    def stage_big_data(self, record_id: str, key: str, data: bytes, *,
                       durable: bool = True) -> None:
        """Write a big-data item that ``save()`` will move into place after the record."""
        final = self.data_path(record_id, key)
        pending_dir = self.directory / PENDING_DIR
        pending_dir.mkdir(mode=0o700, exist_ok=True)
        pending = pending_dir / f"{record_id}-{final.name}"
        atomic.write_file(pending, data, 0o600, durable=durable)
        self._staged = [s for s in self._staged if s[0] != pending]
        self._staged.append((pending, final, durable))

    def _commit_staged(self) -> None:
        staged, self._staged = self._staged, []
        dirs: set[Path] = set()
        for pending, final, durable in staged:
            if durable:
                atomic.makedirs_durable(final.parent)
            else:
                final.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.rename(pending, final)
            if durable:
                dirs.add(final.parent)
        for d in dirs:
            atomic.fsync_dir(d)

    def _discard_staged(self) -> None:
        staged, self._staged = self._staged, []
        for pending, _final, _durable in staged:
            with contextlib.suppress(OSError):
                pending.unlink()

    def _recover_staged(self) -> None:
        pending_dir = self.directory / PENDING_DIR
        try:
            entries = list(os.scandir(pending_dir))
        except OSError:
            return
        for entry in entries:
            record_id, _, file_name = entry.name.rpartition("-")
            target = self._staged_target(record_id, file_name, Path(entry.path))
            try:
                if target is None:
                    os.unlink(entry.path)
                else:
                    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                    os.rename(entry.path, target)
                    atomic.fsync_dir(target.parent)
                    log.warning("completed the interrupted write of %s", target)
            except OSError as exc:  # e.g. a store we may read but not write
                log.debug("leaving %s: %s", entry.path, exc)

    def _staged_target(self, record_id: str, file_name: str, pending: Path) -> Path | None:
        """The final path if the saved record describes the pending bytes, else None."""
        record = self._raw_by_id(record_id)
        if record is None:
            return None
        sizes: dict[str, int] = getattr(record, "big_data_sizes", {})
        digests: dict[str, str] = getattr(record, "big_data_digests", {})
        for key in getattr(record, "big_data_names", []):
            if big_data_file_name(key) != file_name:
                continue
            try:
                data = pending.read_bytes()
            except OSError:
                return None
            if sizes.get(key) != len(data):
                return None
            final = self.data_path(record_id, key)
            digest = digests.get(key, "")
            if digest == sha256_digest(data):
                return final
            # A manifest digested some other way: the record is new if the old bytes no
            # longer match it.
            try:
                old = final.read_bytes()
            except OSError:
                return final
            return final if len(old) != len(data) or digest != sha256_digest(old) else None
        return None

    def remove_data_dir(self, record_id: str) -> None:
        atomic.remove_tree(self.data_dir(record_id))
