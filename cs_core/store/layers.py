"""Layers: create (empty, from a diff, from a template), apply, delete, and the crash
recovery that runs when a store is opened with write access."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, BinaryIO

from cs_core import lazylog as logging  # module loggers that import logging when used
from cs_core import recordclass as attrs  # attrs' API subset, without attrs' import cost
from cs_core.atomic import flushing, syncfs
from cs_core.drivers.base import ApplyDiffOpts, CreateOpts
from cs_core.errors import (
    LayerHasChildren,
    LayerUnknown,
    LayerUsedByContainer,
    LayerUsedByImage,
    NotALayer,
    ParentIsContainer,
)
from cs_core.goformat import go_quote
from cs_core.model import IDMap, Layer, utcnow
from cs_core.progress import Progress
from cs_core.records.base import dedupe
from cs_core.records.layers import APPLYING, APPLYING_TO_EMPTY, INCOMPLETE
from cs_core.store import bigdata
from cs_core.store.context import StoreContext
from cs_core.store.options import LayerOptions
from cs_core.store.templates import copy_template_record, copy_template_tar_split

if TYPE_CHECKING:
    from cs_core.archive.ingest import IngestReport

log = logging.getLogger(__name__)

Fill = Callable[[Layer], None]
#: Makes a new layer's driver layer (durably) from a tree staged beforehand.
Commit = Callable[[Layer, CreateOpts], None]


def recover(ctx: StoreContext) -> None:
    """First use with write access: clean up layers a crashed process left incomplete,
    temp files of writes that never finished, and layers an interrupted create/delete of a
    container or image stranded (cs_core.store.intents)."""
    ls, ist, cs = ctx.layer_store, ctx.image_store, ctx.container_store
    with ls.writing():
        ls.remove_stale_temporaries()
    for layer_ids in ctx.layer_intents.stale():
        with ls.writing(), ist.reading(), cs.reading():
            for layer_id in layer_ids:  # listed children before parents
                layer = ls.by_id.get(layer_id)
                if layer is None or ls.children(layer_id) or cs.by_layer(layer_id):
                    continue
                if ist.by_top_layer(layer_id):
                    continue
                log.warning('Found layer "%s" left behind by an interrupted operation, '
                            "deleting it", layer_id)
                delete_locked(ctx, layer)


# -- create ----------------------------------------------------------------------------------

def put_layer(ctx: StoreContext, id: str | None, parent: str | None, names: Sequence[str],
              mount_label: str, writeable: bool, options: LayerOptions | None,
              diff: BinaryIO | None) -> Layer:
    """Create a layer, optionally filled from a (compressed) tar stream, atomically."""
    options = options or LayerOptions()
    fill = None
    if diff is not None:
        _import_ingest()

        def fill(layer: Layer) -> None:
            with flushing(ctx.driver.home):
                apply_diff_locked(ctx, layer, diff, options)
    return create(ctx, id, parent, names, mount_label, writeable, options, fill)


def create(ctx: StoreContext, id: str | None, parent: str | None, names: Sequence[str],
           mount_label: str, writeable: bool, options: LayerOptions,
           fill: Fill | None, commit: Commit | None = None) -> Layer:
    """Create a layer and let ``fill`` give it content, all or nothing; or let ``commit``
    make its driver layer (durably) from a tree staged beforehand (cs_core.store.layer_import)."""
    ls = ctx.layer_store
    with ls.writing(), ctx.ro_layers_reading(), ctx.container_store.reading():
        parent_layer = parent_for(ctx, parent)
        layer_id = ls.new_id(id)
        names = dedupe(names)
        ls.check_names_free(names)
        template: Layer | None = None
        if options.template_layer:
            # As Go: only a layer of this (read-write) store can be a template.
            template = ls.by_id.get(options.template_layer)
            if template is None:
                raise LayerUnknown()
        uid_map, gid_map = layer_maps(ctx, options, parent_layer)
        if ctx.can_use_shifting(uid_map, gid_map):
            uid_map, gid_map = [], []  # stored as on the host, mapped when mounted
        layer = Layer(
            id=layer_id, parent=parent_layer.id if parent_layer else "", names=list(names),
            mount_label=mount_label, created=utcnow(), flags={**options.flags, INCOMPLETE: True},
            uid_map=uid_map, gid_map=gid_map,
        )
        if template is not None:
            copy_template_record(template, layer)
        ls.pick_location(layer, volatile=options.volatile, writeable=writeable)
        ls.add(layer)
        # The incomplete record first, so a crash leaves something to clean up. Its rename
        # need not be fsynced now: the layer's flush or the complete record's save does it,
        # and a power cut before then can only leave the old record file (whole: its data
        # is fsynced), never a record claiming content.
        ls.save(sync_dir=False)
        try:
            _create_in_driver(ctx, layer, parent_layer, template, writeable, options, commit)
            for key, value in options.big_data.items():
                bigdata.put(ls, layer, key, value)
            if fill is not None:
                fill(layer)
            if commit is None:
                # The layer's files must be on disk before the record that says it is whole:
                # only what create made, when that is all there is and the driver can name it.
                made_only = fill is None and template is None and not options.big_data
                if not (made_only and ctx.driver.flush_created(layer.id, layer.parent or None)):
                    ls.sync_content()
            del layer.flags[INCOMPLETE]
            ls.save()
        except BaseException:
            _discard(ctx, layer)
            raise
        return attrs.evolve(layer)


def parent_for(ctx: StoreContext, parent: str | None) -> Layer | None:
    """The layer ``parent`` names, if it may have a child (the layer stores and the
    container store held)."""
    if not parent:
        return None
    found = ctx.find_layer(parent)
    if found is None:
        raise LayerUnknown()  # Go names no layer here
    if ctx.container_store.by_layer(found[0].id) is not None:
        raise ParentIsContainer()
    return found[0]


def _create_in_driver(ctx: StoreContext, layer: Layer, parent_layer: Layer | None,
                      template: Layer | None, writeable: bool, options: LayerOptions,
                      commit: Commit | None) -> None:
    driver = ctx.driver
    uid_map, gid_map = layer.uid_map, layer.gid_map
    opts = CreateOpts(mount_label=layer.mount_label, storage_opt=options.storage_opt,
                      uid_map=tuple(uid_map), gid_map=tuple(gid_map))
    parent_maps = (parent_layer.uid_map, parent_layer.gid_map) if parent_layer else ([], [])
    if commit is not None:
        # A tree built (and flushed) with no lock held: moved in, made durable.
        commit(layer, opts)
        return
    if template is not None:
        # Before the tree: syncing this small file first does not wait for the
        # copy's data, which the caller's sync_content flushes once (a failure removes both).
        copy_template_tar_split(ctx.layer_store, template.id, layer.id)
        old_maps = (template.uid_map, template.gid_map)
        # The driver re-owns the copy for the new maps itself (Go's store does it
        # after a create from template): see GraphDriver.create_from_template.
        driver.create_from_template(
            layer.id, template.id, old_maps, layer.parent or None, parent_maps, opts, writeable)
        return
    if writeable:
        driver.create_read_write(layer.id, layer.parent or None, opts)
    else:
        driver.create(layer.id, layer.parent or None, opts)
    if parent_maps != (uid_map, gid_map) and (uid_map or gid_map or parent_layer):
        driver.update_layer_id_map(
            layer.id, (parent_maps[0], parent_maps[1]), (uid_map, gid_map), layer.mount_label)


def layer_maps(ctx: StoreContext, options: LayerOptions,
                parent: Layer | None) -> tuple[list[IDMap], list[IDMap]]:
    uid_map = [] if options.host_uid_mapping else list(options.uid_map)
    gid_map = [] if options.host_gid_mapping else list(options.gid_map)
    if not options.host_uid_mapping and not uid_map:
        uid_map = list(parent.uid_map) if parent else list(ctx.uid_map)
    if not options.host_gid_mapping and not gid_map:
        gid_map = list(parent.gid_map) if parent else list(ctx.gid_map)
    return uid_map, gid_map


def _discard(ctx: StoreContext, layer: Layer) -> None:
    """Undo a failed create: data, driver layer, record (errors logged, not raised)."""
    ls = ctx.layer_store
    try:
        ls.delete_data(layer)
    except Exception as exc:
        log.error("while recovering from a failure, deleting layer %s: %s", layer.id, exc)
        return  # keep the incomplete record: the next write-access load retries
    if layer in ls.records:
        ls.remove(layer)
    with contextlib.suppress(Exception):
        ls.save()


# -- content ---------------------------------------------------------------------------------

def apply_diff(ctx: StoreContext, to: str, stream: BinaryIO, progress: Progress | None) -> int:
    """Apply a (possibly compressed) tar stream to an existing layer; returns its size.

    ``progress`` gets running totals of the bytes read from ``stream``
    (:mod:`cs_core.progress`)."""
    _import_ingest()
    ls = ctx.layer_store
    with ls.writing():
        layer = ls.get(to)

        def fill() -> None:
            with flushing(ctx.driver.home):
                apply_diff_locked(ctx, layer, stream, LayerOptions(progress=progress))

        fill_existing(ctx, layer, fill)
        return layer.uncompressed_size


def fill_existing(ctx: StoreContext, layer: Layer, fill: Callable[[], None]) -> None:
    """Run ``fill`` to add content to an existing layer (the layer store write-locked).

    The layer is marked first (durably): if we die part-way, the next write-access load
    resets it instead of leaving half the files in it. Its content is flushed before the
    mark goes.
    """
    ls = ctx.layer_store
    empty = not layer.uncompressed_digest and not ls.tar_split_path(layer.id).exists()
    layer.flags[APPLYING] = APPLYING_TO_EMPTY if empty else "content"
    ls.save()
    try:
        fill()
        ls.sync_content()
    except BaseException:
        _reset_after_failed_apply(ctx, layer, empty)
        raise
    del layer.flags[APPLYING]
    ls.save()


def _reset_after_failed_apply(ctx: StoreContext, layer: Layer, empty: bool) -> None:
    # Said once the reset is done, so the message never claims a reset that failed.
    ls = ctx.layer_store
    try:
        ls.undo_interrupted_apply(layer)
        ls.save()
    except Exception as exc:
        log.warning('Applying the diff to layer "%s" failed, and so did resetting it '
                    '(the next write resets it): %s', layer.id, exc)
    else:
        if empty:
            log.warning('Applying the diff to layer "%s" failed, layer reset to empty',
                        layer.id)
        else:
            log.warning('Applying the diff to layer "%s" failed part-way: it may hold '
                        'some of the diff\'s files ("check" reports them)', layer.id)


def _import_ingest() -> None:
    """Import the ingest path's modules before the layer lock is taken: the lock is the one
    every writer (ours and Go's) queues on, and an import under it costs each of them the
    import's time again while the CPUs are shared (cs_core.archive.ingest imports gzip and
    the decompressors when it first runs; drivers reach the tar engine, cs_core.drivers.naive,
    through cs_core.drivers.api's lazy names when they first apply)."""
    import gzip  # noqa: F401

    import cs_core.archive.compression
    import cs_core.archive.ingest
    import cs_core.archive.tarsplit
    import cs_core.drivers.naive  # noqa: F401


def apply_diff_locked(ctx: StoreContext, layer: Layer, stream: BinaryIO,
                      options: LayerOptions) -> None:
    # Imported here: the archive modules are not needed to start the CLI (callers that hold
    # the layer lock import them beforehand with _import_ingest).
    from cs_core.archive.ingest import extract_stream

    # Not fsynced on its own: both callers' sync_content flushes it with the layer's files.
    with ctx.layer_store.tar_split_writer(layer.id, durable=False) as ts_file:
        report = extract_stream(stream, ts_file, lambda plain, writer: ctx.driver.apply_diff(
            layer.id, layer.parent or None, plain,
            ApplyDiffOpts(uid_map=tuple(layer.uid_map), gid_map=tuple(layer.gid_map),
                          mount_label=layer.mount_label, tar_split=writer)),
            options.progress)
    record_report(layer, report, options)


def record_report(layer: Layer, report: IngestReport, options: LayerOptions | None = None) -> None:
    """Give ``layer``'s record what its content measured: every way content enters a layer
    (the locked and unlocked imports, a staged layer's apply) records it here.

    With ``options`` (``PutLayer``, ``ApplyDiff``), digests the caller already knows (a
    pull's) win over the measured ones, as in Go; a staged layer's are the differ's, as Go's
    ``ApplyStagedLayer`` takes them.
    """
    known_compressed = options.original_digest if options else ""
    known_uncompressed = options.uncompressed_digest if options else ""
    layer.compressed_digest = (known_compressed if known_compressed.startswith("sha256:")
                               else report.compressed_digest)
    layer.compressed_size = report.compressed_size
    layer.uncompressed_digest = (known_uncompressed if known_uncompressed.startswith("sha256:")
                                 else report.uncompressed_digest)
    layer.uncompressed_size = report.uncompressed_size
    layer.compression = report.compression
    layer.uidset = list(report.uids)
    layer.gidset = list(report.gids)


# -- read ------------------------------------------------------------------------------------

def layer(ctx: StoreContext, ref: str) -> Layer:
    with ctx.read_all(images=False, containers=False):
        found = ctx.find_layer(ref)
        if found is None:
            raise LayerUnknown()
        return attrs.evolve(found[0])


def layers(ctx: StoreContext) -> list[Layer]:
    with ctx.read_all(images=False, containers=False):
        ctx.layer_store.refresh_mounts()
        seen: set[str] = set()
        out = []
        for ls in ctx.layer_stores():
            for record in ls.records:
                if record.id not in seen:
                    seen.add(record.id)
                    out.append(attrs.evolve(record))
        return out


def by_compressed_digest(ctx: StoreContext, digest: str) -> list[Layer]:
    with ctx.read_all(images=False, containers=False):
        return [attrs.evolve(x) for ls in ctx.layer_stores()
                for x in ls.by_compressed_digest(digest)]


def by_uncompressed_digest(ctx: StoreContext, digest: str) -> list[Layer]:
    with ctx.read_all(images=False, containers=False):
        return [attrs.evolve(x) for ls in ctx.layer_stores()
                for x in ls.by_uncompressed_digest(digest)]


# -- delete ----------------------------------------------------------------------------------

def delete_layer(ctx: StoreContext, ref: str) -> None:
    """Delete a layer nobody uses (resolving names and prefixes before checking)."""
    ls, ist, cs = ctx.layer_store, ctx.image_store, ctx.container_store
    with ls.writing(), ist.writing(), cs.writing():
        found = ls.lookup(ref)
        if found is None:
            raise NotALayer()
        for other in ls.records:
            if other.parent == found.id:
                raise LayerHasChildren(f"used by layer {other.id}")
        for image in ist.records:
            if image.top_layer == found.id:
                raise LayerUsedByImage(f"layer {found.id} used by image {image.id}")
        for container in cs.records:
            if container.layer == found.id:
                raise LayerUsedByContainer(f"layer {found.id} used by container {container.id}")
        delete_locked(ctx, found)
        changed = False
        for image in ist.records:
            if found.id in image.mapped_top_layers:
                image.mapped_top_layers.remove(found.id)
                changed = True
        if changed:
            ist.save()


def delete_locked(ctx: StoreContext, layer: Layer) -> None:
    """Mark incomplete (durably), remove the data, then drop the record."""
    ls = ctx.layer_store
    if layer.mount_count > 0:
        with contextlib.suppress(Exception):
            ctx.driver.put(layer.id)
        with ls.mounts_writing():
            layer.mount_count, layer.mount_point = 0, ""
    layer.flags[INCOMPLETE] = True
    ls.save()
    ls.delete_data(layer)
    # The removal must be on disk before the record goes: otherwise a power cut can
    # bring back the layer's directory with no record, which check reports as an
    # unaccounted layer (ext4's journal happens to order these; btrfs and xfs do not).
    syncfs(ctx.driver.home)
    ls.remove(layer)
    ls.save()


# -- big data --------------------------------------------------------------------------------

def big_data(ctx: StoreContext, ref: str, key: str) -> bytes:
    with ctx.read_all(images=False, containers=False):
        found = ctx.find_layer(ref)
        if found is None:
            raise LayerUnknown()
        record, ls = found
        return bigdata.read(ls, record, key, (
            f"locating item named {go_quote(key)} for layer with ID "
            f"{go_quote(record.id)}: file does not exist"))


def set_big_data(ctx: StoreContext, ref: str, key: str, data: bytes) -> None:
    ls = ctx.layer_store
    with ls.writing():
        if bigdata.put(ls, ls.get(ref), key, data):
            ls.save()
