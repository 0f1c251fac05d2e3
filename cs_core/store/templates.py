"""What a layer made from a template takes over from it (Go ``layerStore.create`` with a
``TemplateLayer``).

The copy has the template's contents, so it keeps the template's description of them: the
digests, sizes and compression of the diff it was applied from, the IDs that diff uses and
the tar-split that replays it. The ID sets are the template's as they are: they are the IDs
in the tar headers (container IDs), which new maps do not change.
"""

from __future__ import annotations

import contextlib

from cs_core import atomic
from cs_core.model import Layer
from cs_core.records.layers import LayerStore


def copy_template_record(template: Layer, layer: Layer) -> None:
    """Give ``layer`` the template's metadata and description of its diff (not its names,
    flags, maps or big data: Go copies none of those)."""
    layer.metadata = template.metadata
    layer.compressed_digest = template.compressed_digest
    layer.compressed_size = template.compressed_size
    layer.uncompressed_digest = template.uncompressed_digest
    layer.uncompressed_size = template.uncompressed_size
    layer.compression = template.compression
    layer.uidset = list(template.uidset)
    layer.gidset = list(template.gidset)


def copy_template_tar_split(store: LayerStore, template_id: str, layer_id: str) -> None:
    """Copy the template's tar-split, so that ``diff`` of the copy replays the template's
    stream byte for byte. A template without one leaves the copy without one (its diff is
    then computed from the files, as the template's is)."""
    data = b""
    with contextlib.suppress(FileNotFoundError):
        data = store.tar_split_path(template_id).read_bytes()
    if data:
        atomic.write_file(store.tar_split_path(layer_id), data, 0o600)
