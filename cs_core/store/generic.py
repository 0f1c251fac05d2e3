"""Operations on whatever an ID or name refers to: a layer, an image or a container, looked
for in that order (Go's ``Exists``, ``Lookup``, ``Metadata``, ``Names``, ``Delete``, ...)."""

from __future__ import annotations

from collections.abc import Sequence

from cs_core import atomic
from cs_core.errors import LayerUnknown, NotAnID
from cs_core.model import Container, Image, Layer
from cs_core.store import containers, images, layers
from cs_core.store.context import StoreContext


def _find(ctx: StoreContext, ref: str) -> Layer | Image | Container | None:
    """What ``ref`` names (the caller holds all the read locks)."""
    if (hit := ctx.find_layer(ref)) is not None:
        return hit[0]
    if (img := ctx.find_image(ref)) is not None:
        return img[0]
    return ctx.container_store.lookup(ref)


def exists(ctx: StoreContext, ref: str) -> bool:
    with ctx.read_all():
        return _find(ctx, ref) is not None


def lookup(ctx: StoreContext, ref: str) -> str:
    with ctx.read_all():
        found = _find(ctx, ref)
    if found is None:
        raise LayerUnknown()
    return found.id


def metadata(ctx: StoreContext, ref: str) -> str:
    with ctx.read_all():
        found = _find(ctx, ref)
    if found is None:
        raise NotAnID()
    return found.metadata


def set_metadata(ctx: StoreContext, ref: str, value: str) -> None:
    ls, ist, cs = ctx.layer_store, ctx.image_store, ctx.container_store
    with ls.writing(), ist.writing(), cs.writing():
        for store in (ls, ist, cs):
            record = store.lookup(ref)
            if record is not None:
                record.metadata = value  # type: ignore[union-attr]
                store.save()
                return
    raise NotAnID()


def names(ctx: StoreContext, ref: str) -> list[str]:
    with ctx.read_all():
        found = _find(ctx, ref)
    if found is None:
        raise LayerUnknown()
    return list(found.names)


def update_names(ctx: StoreContext, ref: str, new: Sequence[str], op: str) -> None:
    ls, ist, cs = ctx.layer_store, ctx.image_store, ctx.container_store
    with ls.writing(), ctx.ro_images_reading(), ist.writing(), cs.writing():
        layer = ls.lookup(ref)
        if layer is not None:
            ls.update_names(layer, new, op)
            ls.save()
            return
        image = ist.lookup(ref)
        if image is None:
            # Names of an image in a read-only store can change: the record is copied
            # ("pulled up") into the writable store, whose copy then shadows it.
            pulled = ctx.find_ro_image(ref)
            if pulled is not None:
                image = images.pull_up(ctx, *pulled, names=pulled[0].names)
                ist.add(image)
        if image is not None:
            ist.update_names(image, new, op)
            images.note_names_history(image)
            ist.save()
            return
        container = cs.lookup(ref)
        if container is not None:
            cs.update_names(container, new, op)
            cs.save()
            return
    raise LayerUnknown()


def delete(ctx: StoreContext, ref: str) -> None:
    """Delete whatever ``ref`` names, without safety checks (Go ``Store.Delete``)."""
    ls, ist, cs = ctx.layer_store, ctx.image_store, ctx.container_store
    with ls.writing(), ist.writing(), cs.writing():
        container = cs.lookup(ref)
        if container is not None:
            # Go's Delete removes only the userdata directory, not the big data beside it.
            containers.delete_locked(ctx, container, f"{container.id}/userdata")
            return
        image = ist.lookup(ref)
        if image is not None:
            ist.remove(image)
            ist.save()
            ist.remove_data_dir(image.id)
            return
        layer = ls.lookup(ref)
        if layer is not None:
            layers.delete_locked(ctx, layer)
            return
    raise LayerUnknown()  # Go's Delete tries layers last and reports their miss


def wipe(ctx: StoreContext) -> None:
    ls, ist, cs = ctx.layer_store, ctx.image_store, ctx.container_store
    with ls.writing(), ist.writing(), cs.writing():
        for container in list(cs.records):
            cs.remove_data_dir(container.id)
            for base in (ctx.graph_root, ctx.run_root):
                atomic.remove_tree(ctx.containers_dir(base, container.id))
        cs.records = []
        cs.reindex()
        cs.save()
        for image in list(ist.records):
            ist.remove_data_dir(image.id)
        ist.records = []
        ist.reindex()
        ist.save()
        for layer in sorted(ls.records, key=lambda x: x.created, reverse=True):
            layers.delete_locked(ctx, layer)
        for leftover in ctx.driver.list_layers():
            ctx.driver.remove(leftover)
