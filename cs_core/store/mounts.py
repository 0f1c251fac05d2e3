"""Mounts: reference-counted mounting of container, layer and image trees, and the owners of
a mount point's ancestors that a user namespace cannot traverse."""

from __future__ import annotations

import os
from collections.abc import Sequence

from cs_core import recordclass as attrs  # attrs' API subset, without attrs' import cost
from cs_core.drivers.base import MountOpts
from cs_core.errors import LayerNotMounted, LayerUnknown, ShiftingNotEnabled, StorageError, StoreIsReadOnly
from cs_core.model import Container, Layer
from cs_core.records.layers import LayerStore
from cs_core.store import images
from cs_core.store.context import StoreContext
from cs_core.userns.idmap import representable_on_host


def mount(ctx: StoreContext, ref: str, mount_label: str, options: Sequence[str]) -> str:
    """Mount a container's or layer's tree (reference counted); returns the path."""
    with ctx.container_store.reading():
        container = ctx.container_store.lookup(ref)
    ls = ctx.layer_store
    with ctx.using_driver() as driver, ls.writing():
        layer, opts = _what_to_mount(ctx, ls, ref, container, mount_label, options)
        if opts.uid_map or opts.gid_map:
            opts = attrs.evolve(
                opts, disable_shifting=not ctx.can_use_shifting(opts.uid_map, opts.gid_map))
        with ls.mounts_writing():
            if layer.mount_count > 0 and driver.is_mounted(layer.id, layer.mount_point):
                layer.mount_count += 1
                return layer.mount_point
            if (opts.uid_map or opts.gid_map) and not driver.supports_shifting(
                    opts.uid_map, opts.gid_map) and (
                    list(opts.uid_map), list(opts.gid_map)) != (layer.uid_map, layer.gid_map):
                # e.g. a container made with ID-mapped mounts, opened with them disabled
                raise ShiftingNotEnabled(f"cannot mount layer {layer.id}")
            path = driver.get(layer.id, opts)
            layer.mount_point = os.path.normpath(str(path))
            layer.mount_count = 1
            return layer.mount_point


def _what_to_mount(ctx: StoreContext, ls: LayerStore, ref: str, container: Container | None,
                   mount_label: str, options: Sequence[str]) -> tuple[Layer, MountOpts]:
    if container is not None:
        return ls.get(container.layer), MountOpts(
            mount_label=mount_label or str(container.flags.get("MountLabel", "")),
            options=tuple(options) or tuple(container.flags.get("MountOpts", []) or []),
            uid_map=tuple(container.uid_map), gid_map=tuple(container.gid_map),
            volatile=container.volatile and not ctx.options.disable_volatile,
        )
    found = ls.lookup(ref)
    if found is None:
        if any(ro.lookup(ref) for ro in ctx.ro_layer_stores):
            raise StoreIsReadOnly("mounting read/only store images is not allowed")
        # HEAD's bats suite mounts an image by name or ID: its top layer, and
        # read-only as `mount --ro` does, so an image is never changed in place.
        found = ctx.image_top_layer(ls, ref)
        if found is None:
            raise LayerUnknown()
        options = (*options, "ro")
    return found, MountOpts(mount_label=mount_label or found.mount_label, options=tuple(options))


def unmount(ctx: StoreContext, ref: str, force: bool) -> bool:
    """Drop one mount reference (all with ``force``); returns whether still mounted."""
    with ctx.container_store.reading():
        container = ctx.container_store.lookup(ref)
    ls = ctx.layer_store
    with ctx.using_driver() as driver, ls.writing():
        layer = ls.get(container.layer) if container is not None else ls.lookup(ref)
        if layer is None:
            path = os.path.normpath(ref)
            layer = next((x for x in ls.records if x.mount_point == path), None)
            if layer is None:
                layer = ctx.image_top_layer(ls, ref)
            if layer is None:
                raise LayerUnknown()
        with ls.mounts_writing():
            if force:
                layer.mount_count = min(layer.mount_count, 1)
            if layer.mount_count > 1:
                layer.mount_count -= 1
                return True
            if layer.mount_count == 1:
                driver.put(layer.id)
            layer.mount_count = 0
            layer.mount_point = ""
            return False


def mounted(ctx: StoreContext, ref: str) -> int:
    """Mount count of a container's layer, a layer, or (what ``mount --ro IMAGE``
    mounted) an image's top layer: HEAD's bats suite asks ``mounted IMAGE``."""
    with ctx.container_store.reading():
        container = ctx.container_store.lookup(ref)
    ls = ctx.layer_store
    with ls.reading():
        ls.refresh_mounts()
        layer = ls.lookup(container.layer if container is not None else ref)
        if layer is None and container is None:
            layer = ctx.image_top_layer(ls, ref)
        if layer is None:
            raise LayerUnknown()
        return layer.mount_count


def mount_image(ctx: StoreContext, ref: str, options: Sequence[str], mount_label: str) -> str:
    if "rw" in options:
        raise StorageError("mount options may not contain rw when mounting an image")
    image = images.locate(ctx, ref)
    if not image.top_layer:
        raise LayerUnknown(f"image {image.id} has no top layer")
    return mount(ctx, image.top_layer, mount_label, (*options, "ro"))


def unmount_image(ctx: StoreContext, ref: str, force: bool) -> bool:
    return unmount(ctx, images.image(ctx, ref).top_layer, force)


def layer_parent_owners(ctx: StoreContext, ref: str) -> tuple[list[int], list[int]]:
    """Host UIDs/GIDs owning the mount point's ancestors that the layer's maps cannot
    represent (Go ``LayerParentOwners``): a user namespace cannot traverse them."""
    ls = ctx.layer_store
    with ls.reading():
        ls.refresh_mounts()
        layer = ls.get(ref)
        if not layer.uid_map and not layer.gid_map:
            return [], []
        if not layer.mount_point:
            raise LayerNotMounted()
        uids: set[int] = set()
        gids: set[int] = set()
        directory = os.path.dirname(layer.mount_point)
        while directory and directory != os.sep:
            for st in (os.stat(directory), os.lstat(directory)):
                if not representable_on_host(st.st_uid, layer.uid_map):
                    uids.add(st.st_uid)
                if not representable_on_host(st.st_gid, layer.gid_map):
                    gids.add(st.st_gid)
            directory = os.path.dirname(directory)
        return sorted(uids), sorted(gids)
