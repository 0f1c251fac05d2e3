"""What a layer holds compared with its parent (or another layer): changes, diff size, and
the diff itself as a tar stream, replayed bit-exact from the tar-split when there is one."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from cs_core.errors import LayerUnknown
from cs_core.model import NO_MAPS, Change, IDMapPair, Layer
from cs_core.progress import CountingWriter, Progress
from cs_core.store.context import StoreContext

if TYPE_CHECKING:
    from cs_core.archive.compression import Compression
    from cs_core.drivers.base import GraphDriver


def compared_with(ctx: StoreContext, layer: Layer,
                  from_: str | None = None) -> tuple[str | None, IDMapPair]:
    """The layer a diff of ``layer`` is taken against, and that layer's maps (Go hands
    the driver each layer's own maps, and it reads each tree's owners through them)."""
    parent_id = from_ or layer.parent
    if not parent_id:
        return None, NO_MAPS
    parent = ctx.find_layer(parent_id)
    if parent is None:
        if from_:
            raise LayerUnknown()
        return parent_id, NO_MAPS
    return parent[0].id, parent[0].id_maps


def _diff_pair(ctx: StoreContext, from_: str | None,
               to: str) -> tuple[Layer, str | None, IDMapPair]:
    found = ctx.find_layer(to)
    if found is None:
        raise LayerUnknown()
    return (found[0], *compared_with(ctx, found[0], from_))


def driver_diff_size(ctx: StoreContext, layer: Layer) -> int:
    parent, parent_maps = compared_with(ctx, layer)
    return ctx.driver.diff_size(layer.id, parent, layer.id_maps, parent_maps)


def changes(ctx: StoreContext, from_: str | None, to: str) -> list[Change]:
    with ctx.using_driver() as driver, ctx.layer_store.writing(), ctx.ro_layers_reading():
        layer, parent, parent_maps = _diff_pair(ctx, from_, to)
        return driver.changes(layer.id, parent, layer.id_maps, parent_maps)


def diff_size(ctx: StoreContext, from_: str | None, to: str) -> int:
    with ctx.using_driver() as driver, ctx.layer_store.writing(), ctx.ro_layers_reading():
        layer, parent, parent_maps = _diff_pair(ctx, from_, to)
        return driver.diff_size(layer.id, parent, layer.id_maps, parent_maps)


def diff(ctx: StoreContext, from_: str | None, to: str, out: BinaryIO,
         compression: Compression | None, progress: Progress | None) -> None:
    """Write the layer's changes as a tar stream; bit-exact when tar-split allows.

    ``progress`` gets running totals of the bytes written to ``out`` (compressed, if
    ``compression`` says so; :mod:`cs_core.progress`)."""
    from cs_core.archive.compression import Compression, compress_stream

    with ctx.using_driver() as driver, ctx.layer_store.writing(), ctx.ro_layers_reading():
        layer, parent, parent_maps = _diff_pair(ctx, from_, to)
        if compression is None:
            compression = Compression(layer.compression)
        counted = CountingWriter(out, progress)
        sink = (compress_stream(counted, compression)  # type: ignore[arg-type]
                if compression != Compression.NONE else counted)
        try:
            # The tar-split records the diff against the layer's own parent only.
            ts_path = _tar_split_for(ctx, layer) if parent == (layer.parent or None) else None
            write_layer_tar(driver, layer, ts_path, parent, parent_maps, sink)  # type: ignore[arg-type]
        finally:
            if sink is not counted:
                sink.close()
        counted.finish()


def write_layer_tar(driver: GraphDriver, layer: Layer, ts_path: Path | None, parent: str | None,
                    parent_maps: IDMapPair | None, sink: BinaryIO) -> None:
    """The layer's diff against ``parent`` into ``sink``: reassembled bit-exact from its
    tar-split ``ts_path`` when given, else as the driver produces it."""
    if ts_path is not None:
        import gzip

        from cs_core.archive.tarsplit import reassemble

        getter = driver.diff_getter(layer.id)
        try:
            with gzip.open(ts_path, "rb") as ts:
                reassemble(ts, getter.open, sink)  # type: ignore[arg-type]
        finally:
            getter.close()
        return
    stream = driver.diff(layer.id, parent, layer.uid_map, layer.gid_map, parent_maps)
    try:
        import shutil  # ~1.5 ms with bz2 and lzma; only a diff without tar-split needs it

        shutil.copyfileobj(stream, sink, 1 << 20)
    finally:
        stream.close()


def _tar_split_for(ctx: StoreContext, layer: Layer) -> Path | None:
    for ls in ctx.layer_stores():
        if layer.id in ls.by_id:
            path = ls.tar_split_path(layer.id)
            return path if path.exists() else None
    return None
