"""Images in and out of a store: OCI layouts, OCI archives and docker-archives.

``import_image`` writes an image as c/image's storage destination (``skopeo copy …
containers-storage:…``, ``podman pull``) does, so podman and skopeo use it; ``export_image``
writes one back out from the layers' tar-split (bit-exact with what was imported).
"""

from cs_core.images.exporter import ExportedImage, export_image
from cs_core.images.importer import ImportedImage, chain_layer_ids, import_image
from cs_core.images.progress import BlobProgress, ProgressCallback
from cs_core.images.reference import (
    ImageError,
    Platform,
    TransportRef,
    normalize_name,
    parse_platform,
    parse_transport_ref,
)

__all__ = [
    "BlobProgress", "ExportedImage", "ImageError", "ImportedImage", "Platform",
    "ProgressCallback", "TransportRef", "chain_layer_ids", "export_image", "import_image",
    "normalize_name", "parse_platform", "parse_transport_ref",
]
