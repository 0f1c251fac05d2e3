"""ID-mapped copies of an image's top layer (Go ``imageTopLayerForMapping``).

A container whose maps differ from its image's top layer gets its layer on a copy of that
top layer owned for the container's maps. The copy is made once, recorded in the image's
``mapped-layers`` and reused by later containers with the same maps, so each container
layer does not have to re-own the whole image view again.

The caller holds ``userns.lock`` (as Go's ``CreateContainer`` does) from the choice of a copy
until its container record is saved, so concurrent creates with the same new maps make one
copy between them, not one each.
"""

from __future__ import annotations

import contextlib

from cs_core.errors import LayerUnknown
from cs_core.model import IDMap, Image, Layer
from cs_core.store import images, layers
from cs_core.store.context import StoreContext
from cs_core.store.options import LayerOptions


def _matches(ctx: StoreContext, layer: Layer, uid_map: list[IDMap], gid_map: list[IDMap]) -> bool:
    if ctx.can_use_shifting(uid_map, gid_map) and not layer.uid_map and not layer.gid_map:
        return True  # a host-owned layer is mapped at mount time
    return list(layer.uid_map) == uid_map and list(layer.gid_map) == gid_map


def top_layer_for_mapping(ctx: StoreContext, image: Image, uid_map: list[IDMap],
                          gid_map: list[IDMap]) -> Layer:
    """The image's top layer, or a (possibly new) mapped copy whose maps are the wanted ones.

    Images in read-only stores, and top layers in read-only layer stores, cannot get a
    copy: their top layer is returned and the container layer is re-owned instead.
    """
    assert ctx.userns_lock.locked_for_writing, "userns.lock must be held"
    first: Layer | None = None
    for candidate in [image.top_layer, *image.mapped_top_layers]:
        with contextlib.suppress(LayerUnknown):
            layer = layers.layer(ctx, candidate)
            if _matches(ctx, layer, uid_map, gid_map):
                return layer
            first = first or layer
    if first is None:
        raise LayerUnknown(f"layer not known: {image.top_layer}")
    # Layers before images, the order every other path takes: the other order deadlocks
    # against a process deleting a layer (layers, then images, locked for writing).
    with ctx.layer_store.reading(), ctx.image_store.reading():
        editable = image.id in ctx.image_store.by_id and first.id in ctx.layer_store.by_id
    if not editable:
        return first
    # The copy is made by the driver from the template (a snapshot on btrfs, a reflinked
    # copy on vfs, the template's diff applied on layered drivers), re-owned for the
    # new maps; it keeps the template's digests and tar-split, so it diffs identically.
    mapped = layers.put_layer(
        ctx, None, first.parent or None, (), first.mount_label, False,
        LayerOptions(uid_map=list(uid_map), gid_map=list(gid_map),
                     host_uid_mapping=not uid_map, host_gid_mapping=not gid_map,
                     template_layer=first.id),
        None,
    )
    try:
        images.add_mapped_top_layer(ctx, image.id, mapped.id)
    except BaseException:
        with contextlib.suppress(Exception):
            layers.delete_layer(ctx, mapped.id)
        raise
    return mapped
