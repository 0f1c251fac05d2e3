"""The store's side of staged layers (Go ``PrepareStagedLayer``, ``ApplyStagedLayer``,
``CleanupStagedLayer``): a driver fills a private staging directory, then the content is
moved into a new or existing layer and the layer record gets what the differ measured.

Only drivers implementing ``cs_core.drivers.staging.StagingDriver`` (overlay) can do it; others
get Go's ``ErrNotSupported``.
"""

from __future__ import annotations

import contextlib
import shutil

from cs_core import recordclass
from cs_core.drivers.base import ApplyDiffOpts
from cs_core.drivers.staging import Differ, StagedLayer, StagingDriver
from cs_core.errors import NotSupported
from cs_core.model import Layer
from cs_core.store import bigdata, layers
from cs_core.store.context import StoreContext
from cs_core.store.options import LayerOptions


@recordclass.define
class ApplyStagedLayerOptions:
    """Go ``ApplyStagedLayerOptions``: which layer gets ``diff_output`` (created if missing)."""

    diff_output: StagedLayer
    id: str = ""
    parent_layer: str = ""
    names: list[str] = recordclass.field(factory=list)
    mount_label: str = ""
    writeable: bool = False
    layer_options: LayerOptions | None = None


def staging_driver(ctx: StoreContext) -> StagingDriver:
    driver = ctx.driver
    if not isinstance(driver, StagingDriver):
        raise NotSupported()
    return driver


def prepare(ctx: StoreContext, differ: Differ, options: ApplyDiffOpts | None) -> StagedLayer:
    # No store lock while the differ runs (as Go): it may take long and may call the store.
    return staging_driver(ctx).prepare_staged(differ, options or ApplyDiffOpts())


def apply(ctx: StoreContext, args: ApplyStagedLayerOptions) -> Layer:
    driver = staging_driver(ctx)
    staged = args.diff_output
    ls = ctx.layer_store
    with ls.writing():
        layer = ls.lookup(args.id) if args.id else None
        if layer is not None:
            existing = layer
            layers.fill_existing(ctx, existing, lambda: _fill(ctx, driver, existing, staged))
            return recordclass.evolve(existing)
    return layers.create(
        ctx, args.id or None, args.parent_layer or None, args.names, args.mount_label, args.writeable,
        args.layer_options or LayerOptions(), lambda new: _fill(ctx, driver, new, staged),
    )


def cleanup(ctx: StoreContext, staged: StagedLayer) -> None:
    staging_driver(ctx).cleanup_staged(staged)


def _fill(ctx: StoreContext, driver: StagingDriver, layer: Layer, staged: StagedLayer) -> None:
    """Move the staged content into ``layer`` and record what the differ measured (caller
    holds the layer store for writing and saves)."""
    ls = ctx.layer_store
    ts_path = ls.tar_split_path(layer.id)
    # The tar-split first: it lives in the staging directory, which the move removes.
    if staged.tar_split is not None:
        with open(staged.tar_split, "rb") as src, ls.tar_split_writer(layer.id) as dst:
            shutil.copyfileobj(src, dst)
    else:
        # One describing old content would make `diff` replay the wrong bytes.
        with contextlib.suppress(FileNotFoundError):
            ts_path.unlink()
    driver.apply_staged(layer.id, layer.parent or None, staged)
    layers.record_report(layer, staged.report())
    if staged.metadata:
        layer.metadata = staged.metadata
    for key, value in staged.big_data.items():
        bigdata.put(ls, layer, key, value)
