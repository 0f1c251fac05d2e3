"""Keeping a store tidy: shutdown, garbage collection, dedup, and the driver's own layers
(records or not). Check and repair are cs_core.store.check and cs_core.store.repair."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Sequence
from pathlib import Path

from cs_core import atomic
from cs_core.drivers.base import CreateOpts
from cs_core.errors import LayerUsedByContainer
from cs_core.model import IDMap
from cs_core.records.base import generate_id
from cs_core.store import images, layers
from cs_core.store.context import StoreContext

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def shutdown(ctx: StoreContext, force: bool) -> list[str]:
    """Unmount everything (with ``force``) and release driver resources."""
    ls = ctx.layer_store
    with ctx.graph_lock.write_locked(), ls.writing():
        mounted = [layer.id for layer in ls.records if layer.mount_count > 0]
        if mounted and not force:
            raise LayerUsedByContainer("a layer is mounted")
        if mounted:
            with ls.mounts_writing():
                for layer in ls.records:
                    if layer.mount_count > 0:
                        with contextlib.suppress(Exception):
                            ctx.driver.put(layer.id)
                        layer.mount_count, layer.mount_point = 0, ""
        ctx.note_driver_shut_down()
        ctx.driver.cleanup()
        return mounted


def garbage_collect(ctx: StoreContext) -> None:
    """Remove data no record refers to (directories of deleted items, orphan layers)."""
    ls, ist, cs = ctx.layer_store, ctx.image_store, ctx.container_store
    with ls.writing(), ist.writing(), cs.writing():
        for entry in os.listdir(cs.directory):
            if _HEX64.match(entry) and entry not in cs.by_id:
                atomic.remove_tree(cs.directory / entry)
        for entry in os.listdir(ist.directory):
            if _HEX64.match(entry) and entry not in ist.by_id:
                atomic.remove_tree(ist.directory / entry)
        for layer_id in ctx.driver.list_layers():
            if layer_id not in ls.by_id:
                with contextlib.suppress(FileNotFoundError):
                    ls.tar_split_path(layer_id).unlink()
                ls.remove_data_dir(layer_id)
                ctx.driver.remove(layer_id)


def dedup(ctx: StoreContext, hash_method: str) -> int:
    """Share extents of identical files in layers that images use; return bytes shared."""
    from cs_core.dedup import HashMethod, dedup_dirs

    method = HashMethod.parse(hash_method)
    with ctx.read_all(containers=False):
        by_id = {layer.id: layer for layer in layers.layers(ctx)}
        wanted: set[str] = set()
        for image in images.images(ctx):
            pending = [image.top_layer, *image.mapped_top_layers]
            while pending:
                layer_id = pending.pop()
                if layer_id and layer_id not in wanted and layer_id in by_id:
                    wanted.add(layer_id)
                    pending.append(by_id[layer_id].parent)
        dirs: list[Path] = []
        for layer_id in sorted(wanted):
            try:
                dirs.append(ctx.driver.layer_dir(layer_id))
            except NotImplementedError:
                return 0  # a driver without plain directories dedups nothing, as in Go
        return dedup_dirs(dirs, method)


def storage_layers(ctx: StoreContext) -> list[str]:
    """Layer IDs the driver holds data for, records or not."""
    with ctx.using_driver() as driver:
        return driver.list_layers()


def create_storage_layer(ctx: StoreContext, id: str | None, parent: str | None,
                         mount_label: str, writeable: bool, uid_map: Sequence[IDMap],
                         gid_map: Sequence[IDMap]) -> str:
    """Create a driver layer without a record (Go CLI ``create-storage-layer``)."""
    layer_id = id or generate_id(ctx.driver.exists)
    opts = CreateOpts(mount_label=mount_label, uid_map=tuple(uid_map), gid_map=tuple(gid_map))
    with ctx.using_driver() as driver:
        if writeable:
            driver.create_read_write(layer_id, parent, opts)
        else:
            driver.create(layer_id, parent, opts)
    return layer_id


def status(ctx: StoreContext) -> list[tuple[str, str]]:
    with ctx.using_driver() as driver:
        return list(driver.status())
