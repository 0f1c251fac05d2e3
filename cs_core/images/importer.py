"""Writing an image into a store exactly as c/image's storage destination does.

What podman, skopeo and ``images-by-digest`` look for (checked against skopeo 1.9.3 in
tests/images): layer IDs are chain IDs (the first layer's diff ID hex, then
``sha256(parent + "+" + diffIDhex)``), each layer recording the manifest's blob digest as its
compressed digest and the verified diff ID as its uncompressed one; the image ID is the config
digest hex; big data, in this order, are the config under its digest, the index the manifest
was picked from (``manifest-<digest>``), the manifest under ``manifest-<digest>`` and
``manifest``, and an empty ``signature-<hex>``; names are added after the record exists
(taking them from older images, as ``AddNames``).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
from collections.abc import Sequence

import attrs

from cs_core.codec import parse_time
from cs_core.errors import DuplicateID, ImageUnknown, LayerUnknown
from cs_core.images.progress import BlobProgress, ProgressCallback
from cs_core.images.reference import (
    ImageError,
    Platform,
    TransportRef,
    normalize_name,
    parse_transport_ref,
)
from cs_core.images.source import BlobSource, SourceImage, open_source, sha256_of
from cs_core.model import Image, Layer
from cs_core.store import ImageOptions, LayerOptions, Store


@attrs.frozen
class ImportedImage:
    """What an import stored: ``layers`` base first; ``new_layers`` the ones it had to create."""

    id: str
    names: tuple[str, ...]
    digest: str
    layers: tuple[str, ...]
    new_layers: tuple[str, ...]


def chain_layer_ids(diff_ids: Sequence[str]) -> list[str]:
    """c/image's layer IDs for an image's diff IDs (no TOC-based partial pulls here)."""
    ids: list[str] = []
    for diff_id in diff_ids:
        hexpart = diff_id.partition(":")[2]
        ids.append(sha256_of(f"{ids[-1]}+{hexpart}".encode()).partition(":")[2]
                   if ids else hexpart)
    return ids


def import_image(store: Store, source: str | TransportRef, names: Sequence[str] = (), *,
                 platform: Platform | None = None,
                 progress: ProgressCallback | None = None) -> ImportedImage:
    """Store the image ``source`` names (``oci:DIR[:REF]``, ``oci-archive:FILE[:REF]``,
    ``docker-archive:FILE[:REF]``) under ``names`` (normalised as podman does).

    Every blob is verified first; on any failure the layers this call created are removed
    and no image or name is left behind.
    """
    ref = parse_transport_ref(source) if isinstance(source, str) else source
    wanted = [normalize_name(n) for n in names]
    with open_source(ref, platform) as (src, image):
        if not wanted:
            wanted = [normalize_name(n) for n in image.names]
        created: list[str] = []
        try:
            layer_ids = _commit_layers(store, src, image, created, progress)
            image_id = _commit_image(store, image, layer_ids[-1] if layer_ids else "", wanted)
        except BaseException:
            _remove_layers(store, created)
            raise
    return ImportedImage(image_id, tuple(wanted), store.image(image_id).digest,
                         tuple(layer_ids), tuple(created))


def _commit_layers(store: Store, src: BlobSource, image: SourceImage, created: list[str],
                   progress: ProgressCallback | None) -> list[str]:
    ids = chain_layer_ids(image.diff_ids)
    parent = ""
    for index, (blob, diff_id, layer_id) in enumerate(
            zip(image.layers, image.diff_ids, ids, strict=True)):
        if _existing(store, layer_id) is None:
            size = None if blob.size < 0 else blob.size
            src.verify_blob(blob.digest, size, "layer")
            layer = _put(store, src, blob.digest, layer_id, parent, index, len(ids), size,
                         progress)
            if layer is not None:
                created.append(layer.id)
                if layer.uncompressed_digest != diff_id:
                    raise ImageError(f"layer {blob.digest} uncompresses to "
                                     f"{layer.uncompressed_digest}, the config says {diff_id}")
        elif progress is not None:
            known = None if blob.size < 0 else blob.size
            progress(BlobProgress(blob.digest, index, len(ids), known or 0, known))
        parent = layer_id
    return ids


def _existing(store: Store, layer_id: str) -> Layer | None:
    try:
        return store.layer(layer_id)
    except LayerUnknown:
        return None


def _put(store: Store, src: BlobSource, digest: str, layer_id: str, parent: str, index: int,
         count: int, size: int | None, progress: ProgressCallback | None) -> Layer | None:
    """Apply one verified blob as layer ``layer_id``; None if another writer made it first."""
    def report(done: int) -> None:
        if progress is not None:
            progress(BlobProgress(digest, index, count, done, size))

    with src.open_blob(digest) as raw:
        try:
            return store.put_layer(layer_id, parent or None, options=LayerOptions(
                original_digest=digest, progress=report), diff=raw)
        except DuplicateID:
            return None


def _commit_image(store: Store, image: SourceImage, top: str, names: list[str]) -> str:
    image_id = image.config_digest.partition(":")[2]
    md = image.manifest_digest
    big_data: dict[str, bytes] = {image.config_digest: image.config}
    if image.toplevel is not None and image.toplevel != image.manifest:
        big_data[f"manifest-{image.toplevel_digest}"] = image.toplevel
    big_data[f"manifest-{md}"] = image.manifest
    big_data["manifest"] = image.manifest
    big_data[f"signature-{md.partition(':')[2]}"] = b""
    metadata = json.dumps({"signatures-sizes": {md: []}}, separators=(",", ":"))
    existing = _existing_image(store, image_id)
    if existing is None:
        store.create_image(image_id, layer=top, metadata=metadata, options=ImageOptions(
            creation_date=_created(image), big_data=big_data))
    else:
        if existing.top_layer != top:
            raise ImageError(f"image with ID {image_id} already exists, but uses a different "
                             "top layer")
        for key, value in big_data.items():
            store.set_image_big_data(image_id, key, value)
        store.set_metadata(image_id, metadata)
    try:
        if names:
            store.add_names(image_id, names)
    except BaseException:
        if existing is None:
            with contextlib.suppress(Exception):
                store.delete_image(image_id, commit=True)
        raise
    return image_id


def _existing_image(store: Store, image_id: str) -> Image | None:
    try:
        return store.image(image_id)
    except ImageUnknown:
        return None


def _created(image: SourceImage) -> _dt.datetime | None:
    doc = json.loads(image.config)
    created = doc.get("created") if isinstance(doc, dict) else None
    if not isinstance(created, str):
        return None
    try:
        return parse_time(created)
    except ValueError:
        return None


def _remove_layers(store: Store, layer_ids: list[str]) -> None:
    for layer_id in reversed(layer_ids):
        with contextlib.suppress(Exception):
            store.delete_layer(layer_id)
