"""Writing a stored image out as an OCI layout, an OCI archive or a docker-archive.

Layers come from ``Store.diff`` (tar-split replay, so each uncompressed layer is bit-exact
with what was imported and its digest is the config's diff ID); the config is written
unchanged, so the image ID of a re-import is the same; the manifest is new (compression may
differ from the original blobs').
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import attrs

from cs_core import atomic
from cs_core.archive.compression import Compression
from cs_core.errors import ImageUnknown
from cs_core.images.progress import BlobProgress, ProgressCallback
from cs_core.images.reference import ImageError, TransportRef, normalize_name, parse_transport_ref
from cs_core.images.source import (
    DOCKER_CONFIG,
    DOCKER_LAYER,
    OCI_CONFIG,
    OCI_LAYER,
    OCI_MANIFEST,
    REF_NAME,
    config_diff_ids,
    go_json,
    sha256_of,
)
from cs_core.model import Image
from cs_core.store import Store

COMPRESSIONS = {"none": Compression.NONE, "gzip": Compression.GZIP, "zstd": Compression.ZSTD}
_OCI_SUFFIX = {Compression.NONE: "", Compression.GZIP: "+gzip", Compression.ZSTD: "+zstd"}


@attrs.frozen
class ExportedImage:
    """What an export wrote: the manifest's digest, and each layer's blob digest."""

    manifest_digest: str
    config_digest: str
    layer_digests: tuple[str, ...]
    diff_ids: tuple[str, ...]


@attrs.frozen
class _Blob:
    digest: str
    size: int


class _BlobDir:
    """``blobs/sha256`` of a layout being written: each blob lands under its digest whole."""

    def __init__(self, root: Path) -> None:
        self.dir = root / "blobs" / "sha256"
        self.dir.mkdir(parents=True, exist_ok=True)

    def put(self, data: bytes) -> _Blob:
        digest = sha256_of(data)
        atomic.write_file(self.dir / digest.partition(":")[2], data, 0o644)
        return _Blob(digest, len(data))

    @contextlib.contextmanager
    def stream(self) -> Iterator[tuple[BinaryIO, list[_Blob]]]:
        """A writer; after the block the blob is in place and its digest in the list."""
        fd, tmp = tempfile.mkstemp(prefix=".tmp-blob-", dir=self.dir)
        result: list[_Blob] = []
        try:
            with os.fdopen(fd, "wb") as f:
                hashing = _HashingWriter(f)
                yield hashing, result  # type: ignore[misc]
                f.flush()
                os.fsync(f.fileno())
            blob = _Blob("sha256:" + hashing.hash.hexdigest(), hashing.size)
            os.chmod(tmp, 0o644)
            os.rename(tmp, self.dir / blob.digest.partition(":")[2])
            result.append(blob)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise


class _HashingWriter:
    def __init__(self, inner: BinaryIO) -> None:
        self.inner = inner
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: Any) -> int:
        self.hash.update(data)
        self.size += len(data)
        self.inner.write(data)
        return len(data)

    def flush(self) -> None:
        self.inner.flush()


def export_image(store: Store, image_ref: str, dest: str | TransportRef, *,
                 compression: str | None = None,
                 progress: ProgressCallback | None = None) -> ExportedImage:
    """Write image ``image_ref`` to ``dest`` (``oci:DIR[:REF]``, ``oci-archive:FILE[:REF]``,
    ``docker-archive:FILE[:NAME]``), layers compressed as ``compression`` says (``gzip``,
    ``zstd`` or ``none``; default gzip for OCI, none for docker-archive, as skopeo)."""
    ref = parse_transport_ref(dest) if isinstance(dest, str) else dest
    default = "none" if ref.transport == "docker-archive" else "gzip"
    kind = COMPRESSIONS.get(compression or default)
    if kind is None:
        raise ImageError(f"unknown compression {compression!r}: use gzip, zstd or none")
    image = find_image(store, image_ref)
    config_digest, config = _config_of(store, image.id)
    diff_ids = config_diff_ids(config, config_digest)
    layers = _layer_chain(store, image.top_layer, diff_ids)
    if ref.transport == "oci":
        root = Path(ref.path)
        root.mkdir(parents=True, exist_ok=True)
        return _write_oci(store, root, ref.ref, layers, config, config_digest, diff_ids, kind,
                          progress)
    target = Path(ref.path)
    with tempfile.TemporaryDirectory(prefix=".tmp-export-", dir=target.parent or ".") as tmp:
        staging = Path(tmp)
        if ref.transport == "oci-archive":
            result = _write_oci(store, staging, ref.ref, layers, config, config_digest,
                                diff_ids, kind, progress)
        else:
            tag = normalize_name(ref.ref) if ref.ref else _first_tag(image.names)
            result = _write_docker(store, staging, tag, layers, config, config_digest,
                                   diff_ids, kind, progress)
        _tar_directory(staging, target)
    return result


def find_image(store: Store, ref: str) -> Image:
    """An image by ID, name or ID prefix; a short name also as podman normalises it."""
    try:
        return store.image(ref)
    except ImageUnknown as exc:
        error = exc
    with contextlib.suppress(ImageError, ImageUnknown):
        return store.image(normalize_name(ref))
    raise error.wrap(f"locating image {ref!r}") from None


def _config_of(store: Store, image_id: str) -> tuple[str, bytes]:
    """The image's config, found as podman finds it: through its manifest."""
    keys = store.list_image_big_data(image_id)
    digest = f"sha256:{image_id}"
    if "manifest" in keys:
        manifest = store.image_big_data(image_id, "manifest")
        with contextlib.suppress(ValueError, KeyError, TypeError, AttributeError):
            digest = json.loads(manifest)["config"]["digest"]
    if digest not in keys:
        raise ImageError(f"image {image_id} has no config (big data {digest!r} is missing)")
    config = store.image_big_data(image_id, digest)
    if sha256_of(config) != digest:
        raise ImageError(f"image {image_id}: its config does not match its digest {digest}")
    return digest, config


def _layer_chain(store: Store, top: str, diff_ids: list[str]) -> list[str]:
    chain: list[str] = []
    layer_id = top
    while layer_id:
        layer = store.layer(layer_id)
        chain.append(layer.id)
        layer_id = layer.parent
        if len(chain) > len(diff_ids):
            break
    chain.reverse()
    if len(chain) != len(diff_ids):
        raise ImageError(f"the image's layers ({len(chain)}) do not match its config's "
                         f"diff IDs ({len(diff_ids)})")
    for layer_id, diff_id in zip(chain, diff_ids, strict=True):
        got = store.layer(layer_id).uncompressed_digest
        if got and got != diff_id:
            raise ImageError(f"layer {layer_id} holds {got}, the config says {diff_id}")
    return chain


def _first_tag(names: list[str]) -> str:
    return next((n for n in names if "@" not in n), "")


def _write_layers(store: Store, blobs: _BlobDir, layers: list[str], diff_ids: list[str],
                  kind: Compression, progress: ProgressCallback | None) -> list[_Blob]:
    out: list[_Blob] = []
    for index, layer_id in enumerate(layers):
        # Uncompressed, the blob is the layer's tar stream, whose size the record holds.
        total = (store.layer(layer_id).uncompressed_size or None) if kind == Compression.NONE else None

        def report(done: int, index: int = index, total: int | None = total) -> None:
            if progress is not None:
                progress(BlobProgress(diff_ids[index], index, len(layers), done, total))

        with blobs.stream() as (f, result):
            store.diff(None, layer_id, f, kind, progress=report)
        blob = result[0]
        if kind == Compression.NONE and blob.digest != diff_ids[index]:
            raise ImageError(f"layer {layer_id} exported as {blob.digest}, its diff ID is "
                             f"{diff_ids[index]}")
        out.append(blob)
    return out


def _write_oci(store: Store, root: Path, ref_name: str, layers: list[str], config: bytes,
               config_digest: str, diff_ids: list[str], kind: Compression,
               progress: ProgressCallback | None) -> ExportedImage:
    blobs = _BlobDir(root)
    written = _write_layers(store, blobs, layers, diff_ids, kind, progress)
    config_blob = blobs.put(config)
    if config_blob.digest != config_digest:  # _config_of checked it: the bytes changed since
        raise ImageError(f"the config written to {root} is {config_blob.digest}, "
                         f"not {config_digest}")
    manifest = go_json({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config)},
        "layers": [{"mediaType": OCI_LAYER + _OCI_SUFFIX[kind], "digest": b.digest,
                    "size": b.size} for b in written],
    })
    manifest_blob = blobs.put(manifest)
    entry: dict[str, Any] = {"mediaType": OCI_MANIFEST, "digest": manifest_blob.digest,
                             "size": manifest_blob.size}
    if ref_name:
        entry["annotations"] = {REF_NAME: ref_name}
    index = _existing_index(root)
    # As c/image's OCI destination: an entry with the same ref name is replaced.
    index["manifests"] = [m for m in index["manifests"]
                          if not (ref_name and isinstance(m, dict)
                                  and (m.get("annotations") or {}).get(REF_NAME) == ref_name)]
    index["manifests"].append(entry)
    atomic.write_file(root / "oci-layout", b'{"imageLayoutVersion":"1.0.0"}', 0o644)
    atomic.write_file(root / "index.json", go_json(index), 0o644)
    return ExportedImage(manifest_blob.digest, config_digest,
                         tuple(b.digest for b in written), tuple(diff_ids))


def _existing_index(root: Path) -> dict[str, Any]:
    path = root / "index.json"
    if not path.exists():
        return {"schemaVersion": 2, "manifests": []}
    try:
        index = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ImageError(f"{path}: cannot add to this OCI layout: {exc}") from None
    if not isinstance(index, dict) or not isinstance(index.get("manifests"), list):
        raise ImageError(f"{path}: cannot add to this OCI layout: no manifests list")
    return index


def _write_docker(store: Store, root: Path, tag: str, layers: list[str], config: bytes,
                  config_digest: str, diff_ids: list[str], kind: Compression,
                  progress: ProgressCallback | None) -> ExportedImage:
    blobs = _BlobDir(root)
    written = _write_layers(store, blobs, layers, diff_ids, kind, progress)
    paths = []
    for blob in written:
        name = f"{blob.digest.partition(':')[2]}.tar"
        os.rename(blobs.dir / blob.digest.partition(":")[2], root / name)
        paths.append(name)
    config_name = f"{config_digest.partition(':')[2]}.json"
    atomic.write_file(root / config_name, config, 0o644)
    item = {"Config": config_name, "RepoTags": [tag] if tag else [], "Layers": paths}
    atomic.write_file(root / "manifest.json", go_json([item]), 0o644)
    os.rmdir(blobs.dir)
    os.rmdir(blobs.dir.parent)
    manifest = go_json({
        "schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": DOCKER_CONFIG, "size": len(config), "digest": config_digest},
        "layers": [{"mediaType": DOCKER_LAYER, "size": b.size, "digest": b.digest}
                   for b in written],
    })
    return ExportedImage(sha256_of(manifest), config_digest, tuple(b.digest for b in written),
                         tuple(diff_ids))


def _tar_directory(root: Path, target: Path) -> None:
    """``root``'s files as a plain tar at ``target`` (replaced whole, never half-written)."""
    with atomic.atomic_writer(target, 0o644) as out, \
            tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(root.rglob("*")):
            info = tar.gettarinfo(str(path), arcname=str(path.relative_to(root)))
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            if info.isreg():
                with open(path, "rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)
