"""Containers: create (choosing ID maps and the layer to stand on), read, size, delete, and
their big data and directories."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path

from cs_core import atomic, walk
from cs_core import recordclass as attrs  # attrs' API subset, without attrs' import cost
from cs_core.errors import ContainerUnknown, DuplicateName, NotAContainer, StorageError
from cs_core.model import Container, IDMap, Layer, utcnow
from cs_core.records.base import dedupe, generate_id
from cs_core.records.containers import ContainerStore
from cs_core.store import bigdata, content, images, layers
from cs_core.store.auto_userns import auto_userns_maps
from cs_core.store.context import StoreContext
from cs_core.store.mapped_layers import top_layer_for_mapping
from cs_core.store.options import ContainerOptions, LayerOptions

Maps = tuple[list[IDMap], list[IDMap]]


def create_container(ctx: StoreContext, id: str | None, names: Sequence[str], image: str,
                     layer: str | None, metadata: str,
                     options: ContainerOptions | None) -> Container:
    options = options or ContainerOptions()
    if not (options.auto_userns or options.uid_map or options.gid_map or image):
        return _create(ctx, id, names, image, layer, metadata, options)
    # As Go: from choosing maps (free ranges, or an existing mapped copy of the top layer,
    # which a container without maps on a mapped image needs too) until the container
    # record holds them, so that two creates cannot both pick the same range or both
    # make a copy. Explicit maps are not checked against auto ones.
    with ctx.userns_lock.write_locked():
        return _create(ctx, id, names, image, layer, metadata, options)


def _create(ctx: StoreContext, id: str | None, names: Sequence[str], image: str,
            layer: str | None, metadata: str, options: ContainerOptions) -> Container:
    cs = ctx.container_store
    options, image_id, top_layer, image_maps = _image_and_maps(ctx, image, options)
    with cs.reading():
        names = dedupe(names)
        container_id = cs.new_id(id)
        _check_names_free(cs, names)
    uid_map = options.uid_map or ([] if options.host_uid_mapping else image_maps[0] or ctx.uid_map)
    gid_map = options.gid_map or ([] if options.host_gid_mapping else image_maps[1] or ctx.gid_map)
    volatile = options.volatile or ctx.transient
    layer = layer or generate_id()
    # Layer first, record second: if we die in between, the next open removes the layer.
    intent = ctx.layer_intents.begin([layer])
    try:
        rw_layer = layers.put_layer(
            ctx, layer, top_layer or None, (), options.mount_label, True,
            LayerOptions(uid_map=list(uid_map), gid_map=list(gid_map), volatile=volatile,
                         host_uid_mapping=options.host_uid_mapping,
                         host_gid_mapping=options.host_gid_mapping,
                         storage_opt=options.storage_opt),
            None,
        )
    except BaseException:
        intent.end()
        raise
    try:
        with cs.writing():
            cs.new_id(container_id)  # still free?
            _check_names_free(cs, names)
            container = Container(
                id=container_id, names=list(names), image=image_id, layer=rw_layer.id,
                metadata=metadata, created=utcnow(), uid_map=list(uid_map),
                gid_map=list(gid_map), flags=_flags(options, volatile), volatile_store=volatile,
            )
            for key, value in options.big_data.items():
                bigdata.put(cs, container, key, value)
            cs.add(container)
            cs.save()
            return attrs.evolve(container)
    except BaseException:
        with contextlib.suppress(Exception):
            layers.delete_layer(ctx, rw_layer.id)
        raise
    finally:
        intent.end()


def _image_and_maps(ctx: StoreContext, image: str, options: ContainerOptions,
                    ) -> tuple[ContainerOptions, str, str, Maps]:
    """The options with automatic maps filled in, the image's ID, the layer the container's
    stands on (the image's top layer or a copy of it owned for the maps) and its maps."""
    img = images.locate(ctx, image) if image else None
    if options.auto_userns:
        uid_map, gid_map = auto_userns_maps(ctx, options.auto_userns_opts, img)
        options = attrs.evolve(options, uid_map=uid_map, gid_map=gid_map,
                               host_uid_mapping=False, host_gid_mapping=False)
    if img is None:
        return options, "", "", ([], [])
    if not img.top_layer:
        return options, img.id, "", ([], [])
    # Go looks for a top layer owned for the container's maps even when it
    # asks for none: a container without maps on a mapped image gets a
    # host-owned copy, and so no maps (Go's ContainerParentOwners is then []).
    top: Layer = top_layer_for_mapping(
        ctx, img, [] if options.host_uid_mapping else list(options.uid_map),
        [] if options.host_gid_mapping else list(options.gid_map))
    return options, img.id, top.id, (top.uid_map, top.gid_map)


def _check_names_free(cs: ContainerStore, names: Sequence[str]) -> None:
    for name in names:
        holder = cs.by_name.get(name)
        if holder is not None:
            raise DuplicateName(
                f'the container name "{name}" is already in use by {holder.id}. You have '
                f"to remove that container to be able to reuse that name"
            )


def _flags(options: ContainerOptions, volatile: bool) -> dict[str, object]:
    flags: dict[str, object] = {
        **options.flags, "MountLabel": options.mount_label,
        "ProcessLabel": options.process_label,
    }
    if options.mount_opts:
        flags["MountOpts"] = list(options.mount_opts)
    if volatile:
        flags["Volatile"] = True
    return flags


# -- read ------------------------------------------------------------------------------------

def container(ctx: StoreContext, ref: str) -> Container:
    with ctx.container_store.reading():
        return attrs.evolve(ctx.container_store.get(ref))


def containers(ctx: StoreContext) -> list[Container]:
    with ctx.container_store.reading():
        return [attrs.evolve(c) for c in ctx.container_store.records]


def by_layer(ctx: StoreContext, ref: str) -> Container:
    layer = layers.layer(ctx, ref)
    with ctx.container_store.reading():
        found = ctx.container_store.by_layer(layer.id)
        if found is None:
            raise ContainerUnknown()
        return attrs.evolve(found)


def container_size(ctx: StoreContext, ref: str) -> int:
    record = container(ctx, ref)
    total = 0
    with contextlib.suppress(StorageError):
        layer = layers.layer(ctx, record.layer)
        total += content.driver_diff_size(ctx, layer)
    total += sum(record.big_data_sizes.get(k, 0) for k in record.big_data_names)
    # Only the userdata directories, as Go: the big data files beside them are counted above.
    for base in (ctx.graph_root, ctx.run_root):
        total += walk.disk_usage(ctx.containers_dir(base, record.id, "userdata"))
    return total


def directory(ctx: StoreContext, root: Path, ref: str) -> str:
    """``<root>/<driver>-containers/<id>/userdata`` (made if missing)."""
    path = ctx.containers_dir(root, container(ctx, ref).id, "userdata")
    atomic.makedirs(path)
    return str(path)


# -- delete ----------------------------------------------------------------------------------

def delete_container(ctx: StoreContext, ref: str) -> None:
    ls, cs = ctx.layer_store, ctx.container_store
    with ls.writing(), ctx.image_store.reading(), cs.writing():
        found = cs.lookup(ref)
        if found is None:
            raise NotAContainer()
        delete_locked(ctx, found, found.id)


def delete_locked(ctx: StoreContext, record: Container, data_dir: str) -> None:
    """Drop the record, then its layer, then ``<driver>-containers/<data_dir>`` in both roots.

    The record goes first: a crash in between then leaves an unreferenced layer (removed by
    the next open, see cs_core.store.intents), never a container whose layer is gone.
    """
    ls, cs = ctx.layer_store, ctx.container_store
    intent = ctx.layer_intents.begin([record.layer])
    try:
        cs.remove(record)
        cs.save()
        layer = ls.by_id.get(record.layer)
        if layer is not None:
            layers.delete_locked(ctx, layer)
    finally:
        intent.end()
    for base in (ctx.graph_root, ctx.run_root):
        atomic.remove_tree(ctx.containers_dir(base, data_dir))


# -- big data --------------------------------------------------------------------------------

def set_big_data(ctx: StoreContext, ref: str, key: str, data: bytes) -> None:
    cs = ctx.container_store
    with cs.writing():
        bigdata.put(cs, cs.get(ref), key, data)
        cs.save()


def big_data(ctx: StoreContext, ref: str, key: str) -> bytes:
    cs = ctx.container_store
    with cs.reading():
        record = cs.get(ref)
        path = cs.data_path(record.id, key)
        return bigdata.read(cs, record, key, f"open {path}: no such file or directory")


def big_data_size(ctx: StoreContext, ref: str, key: str) -> int:
    return bigdata.size(container(ctx, ref), key, lambda: big_data(ctx, ref, key),
                        unknown_if_unnamed=False)


def big_data_digest(ctx: StoreContext, ref: str, key: str) -> str:
    return bigdata.digest(container(ctx, ref), key, lambda: big_data(ctx, ref, key))
