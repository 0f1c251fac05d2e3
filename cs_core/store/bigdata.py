"""Big data: the one implementation of named blobs beside layer, image and container records.

Layers keep only the item names (as Go's layer store does) and write the blob in place;
images and containers also record each item's size and digest, so their blob is staged and
moved into place by the ``save()`` that records them (see ``RecordStore.stage_big_data``).
The callers take the record store's lock and save.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cs_core.errors import DigestUnknown, SizeUnknown
from cs_core.model import Container, Image, Layer
from cs_core.records.base import RecordStore
from cs_core.records.bigdata import sha256_digest
from cs_core.records.images import recompute_digests

Record = Layer | Image | Container


def put(store: RecordStore[Any], record: Record, key: str, data: bytes,
        digest: str | None = None) -> bool:
    """Store ``data`` as item ``key`` of ``record``; returns whether the name is new.

    ``digest`` is the item's digest when the caller computed it (an image manifest's).
    """
    if isinstance(record, Layer):
        store.write_big_data(record.id, key, data)
    else:
        durable = not (isinstance(record, Container) and record.volatile)
        store.stage_big_data(record.id, key, data, durable=durable)
        record.big_data_sizes[key] = len(data)
        record.big_data_digests[key] = sha256_digest(data) if digest is None else digest
    new = key not in record.big_data_names
    if new:
        record.big_data_names.append(key)
    if isinstance(record, Image):
        recompute_digests(record)
    return new


def manifest_digest(key: str, data: bytes,
                    digest_manifest: Callable[[bytes], str] | None) -> str:
    """The digest an image item is recorded with: a manifest's by the caller's function."""
    if not key.startswith("manifest") or digest_manifest is None:
        return sha256_digest(data)
    try:
        return digest_manifest(data)
    except Exception as exc:
        raise DigestUnknown(f"digesting manifest: {exc}") from exc


def read(store: RecordStore[Any], record: Record, key: str, missing: str) -> bytes:
    """The bytes of item ``key``; ``missing`` is the whole message (Go's wording differs per
    record kind) of the FileNotFoundError raised when there are none."""
    try:
        return store.read_big_data(record.id, key)
    except FileNotFoundError:
        raise FileNotFoundError(missing) from None


def size(record: Image | Container, key: str, read_item: Callable[[], bytes],
         *, unknown_if_unnamed: bool) -> int:
    """The recorded size of item ``key``, else the length of its bytes."""
    if key in record.big_data_sizes:
        return record.big_data_sizes[key]
    if unknown_if_unnamed and key not in record.big_data_names:
        raise SizeUnknown()
    return len(read_item())


def digest(record: Image | Container, key: str, read_item: Callable[[], bytes] | None) -> str:
    """The recorded digest of item ``key``; without one, the digest of its bytes when
    ``read_item`` is given (containers), else Go's ``ErrDigestUnknown`` (images)."""
    recorded = record.big_data_digests.get(key)
    if read_item is None:
        if not recorded:
            raise DigestUnknown()
        return recorded
    if recorded is not None:
        return recorded
    if key not in record.big_data_names:
        raise DigestUnknown()
    return sha256_digest(read_item())
