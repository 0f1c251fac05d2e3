"""Layer imports that hold no store lock while they extract.

Go's ``PutLayer`` holds the layer lock for the whole extraction, so while one process pulls a
300 MB layer every other writer (create-layer, mount, create-container) waits for it. Here a
driver that can stage a tree (``cs_core.drivers.staging.TreeStager``) builds the new layer's
whole tree in a locked staging directory first, with no store lock: no record names it yet,
so neither our processes nor Go's can see, use or "clean up" it, and a killed import leaves
only a staging directory whose lock is free, which the driver prunes. The layer lock is then
taken once, for what ``PutLayer`` does around the extraction: the same checks again (the
store may have changed meanwhile), the incomplete record, the move of the finished tree into
the layer (one rename), the complete record.

The order that makes an acknowledged layer survive a power cut is kept: the staged files are
flushed (``syncfs``) before the lock is taken, the rename is fsynced before the record says
the layer is complete.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from cs_core import atomic
from cs_core import recordclass as attrs  # attrs' API subset, without attrs' import cost
from cs_core.archive.ingest import IngestReport, extract_stream
from cs_core.atomic import flushing, syncfs
from cs_core.drivers.base import ApplyDiffOpts, CreateOpts
from cs_core.drivers.staging import TAR_SPLIT_FILE, StagedTree, TreeStager
from cs_core.errors import LayerUnknown
from cs_core.model import Layer
from cs_core.records.base import dedupe
from cs_core.store import layers
from cs_core.store.context import StoreContext
from cs_core.store.options import LayerOptions


def put_layer(ctx: StoreContext, id: str | None, parent: str | None, names: Sequence[str],
              mount_label: str, writeable: bool, options: LayerOptions | None,
              diff: BinaryIO | None) -> Layer:
    """Go ``PutLayer``: the extraction outside every lock when the driver can stage it,
    else under the layer lock (:func:`cs_core.store.layers.put_layer`)."""
    options = options or LayerOptions()
    if diff is not None:
        done = put_layer_unlocked(ctx, id, parent, list(names), mount_label, writeable,
                                  options, diff)
        if done is not None:
            return done
    return layers.put_layer(ctx, id, parent, names, mount_label, writeable, options, diff)


def put_layer_unlocked(ctx: StoreContext, id: str | None, parent: str | None, names: list[str],
                       mount_label: str, writeable: bool, options: LayerOptions,
                       diff: BinaryIO) -> Layer | None:
    """``PutLayer`` with the extraction outside every lock; None when this driver or these
    options need the locked path (templates, storage options, a tree to re-own)."""
    driver = ctx.driver
    if not isinstance(driver, TreeStager) or options.template_layer or options.storage_opt:
        return None
    if os.geteuid() != 0:
        # Unprivileged, creating the layer's root may fail: the locked path reports that
        # failure with Go's text (``chown <layer dir>: operation not permitted``).
        return None
    parent_id, opts = _checked_plan(ctx, id, parent, names, mount_label, options)
    if opts is None:
        return None
    staged = driver.stage_tree(parent_id, opts)
    try:
        report = _fill_staged(ctx, driver, staged, opts, options, diff)

        def commit(layer: Layer, create_opts: CreateOpts) -> None:
            if (layer.parent or None) != parent_id:
                # The parent's name moved to another layer while we extracted onto the old one.
                raise LayerUnknown(f"parent {parent} changed while the layer was imported")
            _move_tar_split(staged, ctx.layer_store.tar_split_path(layer.id))
            driver.commit_staged_tree(layer.id, parent_id, staged, create_opts, writeable)
            layers.record_report(layer, report, options)

        return layers.create(ctx, id, parent, names, mount_label, writeable, options, None,
                             commit)
    finally:
        driver.discard_staged_tree(staged)  # nothing left to do once committed


def _checked_plan(ctx: StoreContext, id: str | None, parent: str | None, names: list[str],
                  mount_label: str, options: LayerOptions) -> tuple[str | None, CreateOpts | None]:
    """Run ``PutLayer``'s checks before the stream is read (its errors come first, as in Go);
    returns the parent's ID and the driver options, or no options for the locked path."""
    ls = ctx.layer_store
    with ls.reading(), ctx.ro_layers_reading(), ctx.container_store.reading():
        parent_layer = layers.parent_for(ctx, parent)
        if id:
            ls.new_id(id)
        ls.check_names_free(dedupe(names))
        uid_map, gid_map = layers.layer_maps(ctx, options, parent_layer)
        if ctx.can_use_shifting(uid_map, gid_map):
            uid_map, gid_map = [], []
        parent_maps = (parent_layer.uid_map, parent_layer.gid_map) if parent_layer else ([], [])
        if parent_maps != (uid_map, gid_map) and (uid_map or gid_map or parent_layer):
            return None, None  # the copy of the parent needs re-owning: see _put_layer
        return (parent_layer.id if parent_layer else None,
                CreateOpts(mount_label=mount_label, uid_map=tuple(uid_map), gid_map=tuple(gid_map)))


def _fill_staged(ctx: StoreContext, driver: TreeStager, staged: StagedTree, opts: CreateOpts,
                 options: LayerOptions, diff: BinaryIO) -> IngestReport:
    """Extract ``diff`` into the staged tree and flush it (no lock held)."""
    apply_opts = ApplyDiffOpts(uid_map=opts.uid_map, gid_map=opts.gid_map,
                               mount_label=opts.mount_label)
    home = ctx.driver.home
    ts_path = staged.layer_dir / TAR_SPLIT_FILE
    with open(os.open(ts_path, atomic.WRITE_FLAGS | os.O_TRUNC, 0o600), "wb") as ts_file, \
            flushing(home):
        report = extract_stream(diff, ts_file, lambda plain, writer: driver.apply_staged_diff(
            staged, plain, attrs.evolve(apply_opts, tar_split=writer)), options.progress)
    # On disk before the lock is taken and any record names it (and paid outside the lock).
    syncfs(home)
    return report


def _move_tar_split(staged: StagedTree, target: Path) -> None:
    """Move the staged tar-split beside the records (their directory's fsync, in the record
    save that follows, makes the new name durable; the bytes were flushed with the tree)."""
    source = staged.layer_dir / TAR_SPLIT_FILE
    try:
        os.rename(source, target)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        with open(source, "rb") as src, atomic.atomic_writer(target, 0o600) as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        with contextlib.suppress(OSError):
            source.unlink()
