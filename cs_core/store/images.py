"""Images: create (pulling a read-only store's record up when its ID is reused), read,
size, delete with the layers only they use, and their big data."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from pathlib import Path

from cs_core import atomic
from cs_core import recordclass as attrs  # attrs' API subset, without attrs' import cost
from cs_core.errors import (
    DuplicateID,
    DuplicateName,
    ImageUnknown,
    ImageUsedByContainer,
    LayerUnknown,
    NotAnImage,
)
from cs_core.goformat import go_quote
from cs_core.model import Image
from cs_core.records.base import dedupe
from cs_core.records.images import ImageStore, recompute_digests
from cs_core.store import bigdata, content, layers
from cs_core.store.context import StoreContext
from cs_core.store.options import ImageOptions


def create_image(ctx: StoreContext, id: str | None, names: Sequence[str], layer: str,
                 metadata: str, options: ImageOptions | None) -> Image:
    options = options or ImageOptions()
    with (ctx.read_all(images=False, containers=False), ctx.ro_images_reading(),
          ctx.image_store.writing()):
        top = ""
        if layer:
            found = ctx.find_layer(layer)
            if found is None:
                raise LayerUnknown()
            top = found[0].id
        ist = ctx.image_store
        try:
            image_id = ist.new_id(id)
        except DuplicateID as exc:
            raise exc.wrap(f"an image with ID {go_quote(id or '')} already exists") from None
        names = dedupe(names)
        pulled = next(((ro.by_id[image_id], ro) for ro in ctx.ro_image_stores
                       if image_id in ro.by_id), None)
        # An ID of a read-only store's image starts from that record (HEAD's pull-up).
        image = (Image(id=image_id) if pulled is None
                 else pull_up(ctx, *pulled, names=()))
        image.top_layer = top
        image.digest = options.digest or image.digest
        image.metadata = metadata or options.metadata or image.metadata
        image.created = options.creation_date or image.created
        image.flags = dict(options.flags)
        image.names_history += options.names_history
        for key, value in options.big_data.items():
            bigdata.put(ist, image, key, value)
        recompute_digests(image)
        ist.add(image)
        # Names are given only now, taken from any other image holding them: HEAD's
        # bats suite (image-mount.bats) re-uses a name for a second image, where Go
        # 1.43 refuses it as a duplicate (NOTES.md).
        if pulled is None:
            ist.update_names(image, names, "set")
        else:
            ist.update_names(image, [*pulled[0].names, *names], "add")
            note_names_history(image)
        ist.save()
        return attrs.evolve(image)


def pull_up(ctx: StoreContext, image: Image, source: ImageStore, *,
            names: Sequence[str]) -> Image:
    """Copy a read-only store's image, with ``names``, into the writable store (HEAD's
    pull-up: metadata, dates, digest, names history, flags and big data; the caller holds
    the writable image store's write lock, adds the copy and saves)."""
    ist = ctx.image_store
    for name in names:
        holder = ist.by_name.get(name)
        if holder is not None:
            raise DuplicateName(
                f'image name "{name}" is already associated with image "{holder.id}"')
    copy = Image(
        id=image.id, digest=image.digest, names=list(names), top_layer=image.top_layer,
        metadata=image.metadata, created=image.created, flags=dict(image.flags),
        names_history=list(image.names_history),
    )
    for key in image.big_data_names:
        data = source.read_big_data(image.id, key)
        bigdata.put(ist, copy, key, data, image.big_data_digests.get(key) or None)
    recompute_digests(copy)
    return copy


def note_names_history(image: Image) -> None:
    """Put the image's current names at the front of its history, as Go's updateNames does
    (each name in turn, so the last one ends up first)."""
    for name in image.names:
        image.names_history = dedupe([name, *image.names_history])


# -- read ------------------------------------------------------------------------------------

def image(ctx: StoreContext, ref: str) -> Image:
    with ctx.read_all(layers=False, containers=False):
        found = ctx.find_image(ref)
        if found is None:
            raise ImageUnknown()
        return attrs.evolve(found[0])


def locate(ctx: StoreContext, ref: str) -> Image:
    """``image(ref)`` with the context Go's callers put on an unknown image."""
    try:
        return image(ctx, ref)
    except ImageUnknown as exc:
        raise exc.wrap(f"locating image with ID {go_quote(ref)}") from None


def images(ctx: StoreContext) -> list[Image]:
    with ctx.read_all(layers=False, containers=False):
        out = [attrs.evolve(i) for i in ctx.image_store.records]
        seen = {i.id for i in out}
        for ist in ctx.ro_image_stores:
            for record in ist.records:
                if record.id not in seen:
                    seen.add(record.id)
                    out.append(attrs.evolve(record))
        return out


def by_top_layer(ctx: StoreContext, ref: str) -> list[Image]:
    top = layers.layer(ctx, ref)
    with ctx.read_all(layers=False, containers=False):
        return [attrs.evolve(i) for ist in ctx.image_stores() for i in ist.by_top_layer(top.id)]


def by_digest(ctx: StoreContext, digest: str) -> list[Image]:
    with ctx.read_all(layers=False, containers=False):
        return [attrs.evolve(i) for ist in ctx.image_stores() for i in ist.by_digest(digest)]


def image_size(ctx: StoreContext, ref: str) -> int:
    with ctx.read_all(containers=False):
        found = ctx.find_image(ref)
        if found is None:
            raise ImageUnknown()
        record = found[0]
        total = 0
        seen: set[str] = set()
        for top in [record.top_layer, *record.mapped_top_layers]:
            current = top
            while current and current not in seen:
                seen.add(current)
                hit = ctx.find_layer(current)
                if hit is None:
                    raise LayerUnknown()
                walked = hit[0]
                if walked.uncompressed_digest:
                    total += walked.uncompressed_size
                else:
                    total += content.driver_diff_size(ctx, walked)
                current = walked.parent
        for key in record.big_data_names:
            total += record.big_data_sizes.get(key, 0)
        return total


def directory(ctx: StoreContext, root: Path, ref: str) -> str:
    """``<root>/<driver>-images/<id>/userdata`` (made if missing), root a graph or run root."""
    path = root / f"{ctx.driver_name}-images" / image(ctx, ref).id / "userdata"
    atomic.makedirs(path)
    return str(path)


# -- delete ----------------------------------------------------------------------------------

def delete_image(ctx: StoreContext, ref: str, commit: bool) -> list[str]:
    """Delete an image and the layers only it uses; returns those layer IDs.

    As at HEAD, every writable image store holding it loses it (with a split image
    store, an image may still sit in the graph root's store).
    """
    ls, cs = ctx.layer_store, ctx.container_store
    with contextlib.ExitStack() as stack:
        stack.enter_context(ls.writing())
        for ist in ctx.rw_image_stores:
            stack.enter_context(ist.writing())
        stack.enter_context(cs.writing())
        hits = [(found, ist) for ist in ctx.rw_image_stores
                if (found := ist.lookup(ref)) is not None]
        if not hits:
            raise NotAnImage()
        # Top layers of the other images of every writable store: HEAD looks only in the
        # store being walked, so with a split store it could delete a layer that an image
        # of the other store still uses.
        other_tops: set[str] = set()
        for ist in ctx.rw_image_stores:
            for other in ist.records:
                if all(other.id != found.id for found, _ in hits):
                    other_tops.add(other.top_layer)
                    other_tops.update(other.mapped_top_layers)
        to_remove: list[str] = []
        for found, _ in hits:
            for container in cs.records:
                if container.image == found.id:
                    raise ImageUsedByContainer(f"image used by {container.id}")
            to_remove = dedupe([*to_remove, *_layers_only_for(ctx, found, other_tops)])
        if commit:
            _commit_delete(ctx, hits, to_remove)
        return to_remove


def _commit_delete(ctx: StoreContext, hits: list[tuple[Image, ImageStore]],
                   to_remove: list[str]) -> None:
    # Image records first, then their layers: a crash in between strands them,
    # so the next open finishes the job (cs_core.store.intents).
    intent = ctx.layer_intents.begin(to_remove)
    try:
        for found, ist in hits:
            ist.remove(found)
            ist.save()
            ist.remove_data_dir(found.id)
        for layer_id in to_remove:
            doomed = ctx.layer_store.by_id.get(layer_id)
            if doomed is not None:
                layers.delete_locked(ctx, doomed)
    finally:
        intent.end()


def _layers_only_for(ctx: StoreContext, image: Image, other_tops: set[str]) -> list[str]:
    """The image's layers that no container, child or other image (``other_tops``) needs."""
    ls, cs = ctx.layer_store, ctx.container_store
    children: dict[str, list[str]] = {}
    for record in ls.records:
        children.setdefault(record.parent, []).append(record.id)
    to_remove = list(image.mapped_top_layers)
    slated = set(to_remove)
    current = image.top_layer
    while current:
        if cs.by_layer(current) is not None or current in other_tops:
            break
        walked = ls.by_id.get(current)
        parent = walked.parent if walked else ""
        check = [current] + (image.mapped_top_layers if current == image.top_layer else [])
        if any(c not in slated for x in check for c in children.get(x, [])):
            break
        to_remove.append(current)
        slated.add(current)
        current = parent
    return to_remove


def add_mapped_top_layer(ctx: StoreContext, image_ref: str, layer_id: str) -> None:
    """Record an ID-mapped copy of the image's top layer (Go ``addMappedTopLayer``)."""
    with ctx.image_store.writing():
        record = ctx.image_store.get(image_ref)
        if layer_id not in record.mapped_top_layers:
            record.mapped_top_layers.append(layer_id)
            ctx.image_store.save()


# -- big data --------------------------------------------------------------------------------

def set_big_data(ctx: StoreContext, ref: str, key: str, data: bytes,
                 digest_manifest: Callable[[bytes], str] | None) -> None:
    ist = ctx.image_store
    with ist.writing():
        record = ist.lookup(ref)
        if record is None:
            raise ImageUnknown()
        bigdata.put(ist, record, key, data, bigdata.manifest_digest(key, data, digest_manifest))
        ist.save()


def big_data(ctx: StoreContext, ref: str, key: str) -> bytes:
    with ctx.read_all(layers=False, containers=False):
        found = ctx.find_image(ref)
        if found is None:
            raise ImageUnknown()
        record, ist = found
        if key not in record.big_data_names:
            raise FileNotFoundError(
                f"locating item named {go_quote(key)} for image with ID "
                f"{go_quote(record.id)} (consider removing the image to resolve the "
                f"issue): file does not exist")
        return ist.read_big_data(record.id, key)


def big_data_size(ctx: StoreContext, ref: str, key: str) -> int:
    return bigdata.size(image(ctx, ref), key, lambda: big_data(ctx, ref, key),
                        unknown_if_unnamed=True)


def big_data_digest(ctx: StoreContext, ref: str, key: str) -> str:
    return bigdata.digest(image(ctx, ref), key, None)
