"""Image records: ``<driver>-images/images.json`` and image big data."""

from __future__ import annotations

from pathlib import Path

from cs_core import lockfile
from cs_core.errors import ImageUnknown
from cs_core.model import Image
from cs_core.records.base import RecordFile, RecordStore

_DIGEST_ALGS = {"sha256": 64, "sha384": 96, "sha512": 128}


def valid_digest(value: str) -> bool:
    alg, sep, hexpart = value.partition(":")
    if not sep or alg not in _DIGEST_ALGS or len(hexpart) != _DIGEST_ALGS[alg]:
        return False
    return all(c in "0123456789abcdef" for c in hexpart)


class ImageStore(RecordStore[Image]):
    kind = "image"
    record_cls = Image
    unknown_error = ImageUnknown

    def __init__(self, directory: Path, *, read_only: bool = False) -> None:
        lock = lockfile.get(directory / "images.lock", read_only=read_only)
        super().__init__(directory, [RecordFile(directory / "images.json")], lock,
                         read_only=read_only)

    def path_ids(self, image: Image) -> list[str]:
        return [image.id, *([image.top_layer] if image.top_layer else []), *image.mapped_top_layers]

    def _mark_loaded(self, record: Image, source: RecordFile) -> None:
        record.read_only = self.read_only
        recompute_digests(record)

    def lookup(self, ref: str) -> Image | None:
        """IDs, names and prefixes first; then a digest that exactly one image carries
        (HEAD's bats suite looks images up as ``image sha256:...``; an ambiguous digest
        names none, as an ambiguous prefix does)."""
        image = super().lookup(ref)
        if image is None and valid_digest(ref):
            matches = self.by_digest(ref)
            if len(matches) == 1:
                return matches[0]
        return image

    def by_digest(self, digest: str) -> list[Image]:
        # "digests" is derived, not stored: its values are the digest and big-data digests.
        return [image for image in self.mentioning(digest) if digest in image.digests]

    def by_top_layer(self, layer_id: str) -> list[Image]:
        return [
            image for image in self.mentioning(layer_id)
            if image.top_layer == layer_id or layer_id in image.mapped_top_layers
        ]


def recompute_digests(image: Image) -> bool:
    """Derive ``digests`` (Go ``recomputeDigests``): the primary digest, then manifest digests.

    Returns True when the primary digest was empty and got set (the caller should save).
    """
    digests: list[str] = []
    if image.digest:
        digests.append(image.digest)
    for key in image.big_data_names:
        if key.startswith("manifest"):
            digest = image.big_data_digests.get(key, "")
            if digest and valid_digest(digest) and digest not in digests:
                digests.append(digest)
    changed = False
    if not image.digest and digests:
        image.digest = digests[0]
        changed = True
    image.digests = digests
    return changed
