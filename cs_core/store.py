"""The public library API: a store of layers, images and containers.

``open_store()`` returns a :class:`Store`. Every method takes the locks the Go library takes,
in Go's order (graph lock → layer stores → image stores → container store), reloads what
other processes changed, and leaves the store consistent if it fails half-way.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import attrs

from cs_core import atomic, lockfile, rootdirs, walk
from cs_core.config import StoreOptions
from cs_core.drivers.base import ApplyDiffOpts, CreateOpts, DriverConfig, GraphDriver, MountOpts
from cs_core.drivers.plugins import PluginRegistry, default_registry
from cs_core.durability import flushing, syncfs
from cs_core.errors import (
    ContainerUnknown,
    DigestUnknown,
    DuplicateID,
    DuplicateName,
    ImageUnknown,
    ImageUsedByContainer,
    IncompleteOptions,
    LayerHasChildren,
    LayerUnknown,
    LayerUsedByContainer,
    LayerUsedByImage,
    NotAContainer,
    NotALayer,
    NotAnID,
    NotAnImage,
    ParentIsContainer,
    ShiftingNotEnabled,
    SizeUnknown,
    StorageError,
    StoreIsReadOnly,
)
from cs_core.idmap import is_contiguous
from cs_core.intents import LayerIntents
from cs_core.layer_templates import copy_template_record, copy_template_tar_split
from cs_core.model import NO_MAPS, Change, Container, IDMap, IDMapPair, Image, Layer, utcnow
from cs_core.progress import CountingWriter, Progress
from cs_core.records.base import dedupe, sha256_digest
from cs_core.records.containers import ContainerStore
from cs_core.records.images import ImageStore, recompute_digests
from cs_core.records.layers import APPLYING, APPLYING_TO_EMPTY, INCOMPLETE, LayerStore
from cs_core.records.rawfile import Proofs
from cs_core.selection import select_driver
from cs_core.userns import AutoUserNsOptions, auto_userns_maps

if TYPE_CHECKING:
    from cs_core.archive.compression import Compression
    from cs_core.check import CheckOptions, CheckReport, RepairOptions
    from cs_core.drivers.staging import Differ, StagedLayer
    from cs_core.staged_layers import ApplyStagedLayerOptions

log = logging.getLogger(__name__)

VERSION = "1.60.0-dev"  # the Go library version whose behaviour we match


@attrs.define
class LayerOptions:
    """Go ``LayerOptions`` (the parts cs_core supports)."""

    uid_map: list[IDMap] = attrs.field(factory=list)
    gid_map: list[IDMap] = attrs.field(factory=list)
    host_uid_mapping: bool = False
    host_gid_mapping: bool = False
    template_layer: str = ""
    original_digest: str = ""
    original_size: int | None = None
    uncompressed_digest: str = ""
    volatile: bool = False
    storage_opt: dict[str, str] = attrs.field(factory=dict)
    flags: dict[str, object] = attrs.field(factory=dict)
    big_data: dict[str, bytes] = attrs.field(factory=dict)
    #: Running total of bytes read from the diff stream (the convention of cs_core.progress).
    progress: Progress | None = None


@attrs.define
class ImageOptions:
    creation_date: _dt.datetime | None = None
    digest: str = ""
    metadata: str = ""
    big_data: dict[str, bytes] = attrs.field(factory=dict)
    names_history: list[str] = attrs.field(factory=list)
    flags: dict[str, object] = attrs.field(factory=dict)


@attrs.define
class ContainerOptions:
    uid_map: list[IDMap] = attrs.field(factory=list)
    gid_map: list[IDMap] = attrs.field(factory=list)
    host_uid_mapping: bool = False
    host_gid_mapping: bool = False
    # Pick unused host IDs for the container (cs_core.userns); replaces the maps above.
    auto_userns: bool = False
    auto_userns_opts: AutoUserNsOptions = attrs.field(factory=AutoUserNsOptions)
    mount_label: str = ""
    process_label: str = ""
    mount_opts: list[str] = attrs.field(factory=list)
    volatile: bool = False
    storage_opt: dict[str, str] = attrs.field(factory=dict)
    flags: dict[str, object] = attrs.field(factory=dict)
    big_data: dict[str, bytes] = attrs.field(factory=dict)


def open_store(
    options: StoreOptions | None = None, *, graph_root: str | None = None,
    run_root: str | None = None, driver_name: str | None = None,
    driver_options: Sequence[str] = (), registry: PluginRegistry | None = None,
) -> Store:
    """Open (creating if needed) the store described by ``options`` or the keyword arguments.

    With neither, storage.conf and the environment decide, as for podman. Keywords must name
    both roots: Go's ``GetStore`` fills a missing one from storage.conf, which for a graph
    root of your own means sharing podman's run root (its mount counts and locks), so this
    raises :class:`~cs_core.errors.IncompleteOptions` instead. Use it as ``with
    open_store(...) as store:`` to :meth:`Store.close` it at the end.
    """
    if options is None:
        if graph_root or run_root or driver_name or driver_options:
            options = StoreOptions(
                graph_root=graph_root or "", run_root=run_root or "",
                driver_name=driver_name or "", driver_options=list(driver_options),
            )
            _check_roots(options)
        else:
            options = StoreOptions.load_default()
    registry = registry or default_registry()
    store = Store(options, registry)
    registry.hooks.store_opened(store)
    return store


def _check_roots(options: StoreOptions) -> None:
    if not options.graph_root and not options.run_root:
        raise IncompleteOptions("no storage runroot or graphroot specified")  # Go's words
    if not options.graph_root or not options.run_root:
        given, missing = (("graph_root", "run_root") if options.graph_root
                          else ("run_root", "graph_root"))
        raise IncompleteOptions(f"{given} given without {missing}: pass both (storage.conf's "
                                "would be shared with the system's store)")


class Store:
    """Layers, images and containers on local disk, compatible with containers/storage."""

    def __init__(self, options: StoreOptions, registry: PluginRegistry) -> None:
        _check_roots(options)
        self.options = options
        self.registry = registry
        self.graph_root = Path(os.path.abspath(options.graph_root))
        self.run_root = Path(os.path.abspath(options.run_root))
        self.graph_options = list(options.driver_options)
        self.uid_map = list(options.uid_map)
        self.gid_map = list(options.gid_map)
        self.transient = options.transient_store
        # Another user's (or a world-writable) root would let them redirect our writes.
        rootdirs.make_root(str(self.run_root), "run root")
        rootdirs.make_root(str(self.graph_root), "graph root")
        atomic.keep_space_reserve(self.graph_root)  # so deletes work on a full disk
        self.graph_lock = lockfile.get(self.graph_root / "storage.lock")
        # Serializes picking ID maps for new containers (auto user namespaces, mapped copies
        # of image top layers) with other processes, Go's included.
        self.userns_lock = lockfile.get(self.graph_root / "userns.lock")
        with self.graph_lock.write_locked():
            self._graph_token = self.graph_lock.read_token()
            self.driver = self._make_driver(options.driver_name)
        self.driver_name = self.driver.name
        name = self.driver_name
        self.image_root = Path(options.image_store) if options.image_store else self.graph_root
        if options.image_store:
            rootdirs.make_root(options.image_store, "image store")
        self.layer_store = LayerStore(
            self.graph_root / f"{name}-layers", self.run_root / f"{name}-layers", self.driver,
            volatile_directory=self.run_root / f"{name}-layers" if self.transient else None,
            image_directory=self.image_root / f"{name}-layers" if options.image_store else None,
        )
        for d in (
            self.image_root / f"{name}-images", self.graph_root / f"{name}-containers",
            self.run_root / f"{name}-containers", self.run_root / f"{name}-locks",
            self.graph_root / f"{name}-layers", self.run_root / f"{name}-layers",
            self.image_root / f"{name}-layers",
        ):
            atomic.makedirs(d)
        self.image_store = ImageStore(self.image_root / f"{name}-images")
        #: Image stores we may write; with a split image store the graph root's is one too.
        self.rw_image_stores = [self.image_store]
        self.container_store = ContainerStore(
            self.graph_root / f"{name}-containers",
            volatile_directory=self.run_root / f"{name}-containers" if self.transient else None,
        )
        self.ro_layer_stores: list[LayerStore] = []
        self.ro_image_stores: list[ImageStore] = []
        if options.image_store:
            # As HEAD: images created before the split stay visible (after the image store,
            # like an additional store) and can still be deleted there.
            atomic.makedirs(self.graph_root / f"{name}-images")
            graph_images = ImageStore(self.graph_root / f"{name}-images")
            self.rw_image_stores.append(graph_images)
            self.ro_image_stores.append(graph_images)
        for extra in self.driver.additional_image_stores():
            layers_dir = Path(extra) / f"{name}-layers"
            images_dir = Path(extra) / f"{name}-images"
            with contextlib.suppress(OSError):
                self.ro_layer_stores.append(LayerStore(layers_dir, None, self.driver, read_only=True))
                self.ro_image_stores.append(ImageStore(images_dir, read_only=True))
        proofs = Proofs(self.run_root / ".cs-proofs")  # records used raw: records/rawfile.py
        self.container_store.proofs = proofs
        for layers in self._layer_stores():
            layers.proofs = proofs
        for images in self._image_stores():
            images.proofs = proofs
        # First use with write access: clean up layers a crashed process left incomplete,
        # and temp files of writes that never finished.
        with self.layer_store.writing():
            self.layer_store.remove_stale_temporaries()
        self.layer_intents = LayerIntents(self.graph_root / f"{name}-layers")
        self._finish_interrupted()

    def _finish_interrupted(self) -> None:
        """Delete layers that a killed create/delete of a container or image stranded."""
        ls, ist, cs = self.layer_store, self.image_store, self.container_store
        for layer_ids in self.layer_intents.stale():
            with ls.writing(), ist.reading(), cs.reading():
                for layer_id in layer_ids:  # listed children before parents
                    layer = ls.by_id.get(layer_id)
                    if layer is None or ls.children(layer_id) or cs.by_layer(layer_id):
                        continue
                    if ist.by_top_layer(layer_id):
                        continue
                    log.warning('Found layer "%s" left behind by an interrupted operation, '
                                "deleting it", layer_id)
                    self._delete_layer_locked(layer)

    # -- driver ------------------------------------------------------------------------------

    def _make_driver(self, name: str) -> GraphDriver:
        def config_for(driver: str) -> DriverConfig:
            return DriverConfig(
                home=self.graph_root / driver, run_home=self.run_root / driver,
                graph_root=self.graph_root, run_root=self.run_root,
                options=tuple(self.graph_options),
                image_store=Path(self.options.image_store) if self.options.image_store else None,
                uid_map=tuple(self.uid_map), gid_map=tuple(self.gid_map),
            )

        try:
            driver = select_driver(self.registry, name, self.graph_root, config_for,
                                   self.options.driver_priority)
        except StorageError as exc:
            from cs_core.driver_hints import explain

            raise explain(exc, self.registry, self.options, self.graph_root) from exc
        atomic.makedirs(driver.home)
        return driver

    @contextlib.contextmanager
    def _using_driver(self) -> Iterator[GraphDriver]:
        """Hold the graph lock; re-create the driver if another process shut it down."""
        with self.graph_lock.write_locked():
            token = self.graph_lock.read_token()
            if token != self._graph_token:
                self._graph_token = token
                self.driver = self._make_driver(self.driver_name)
                self.layer_store.driver = self.driver
            yield self.driver

    # -- lock helpers ------------------------------------------------------------------------

    @contextlib.contextmanager
    def _read_all(self, layers: bool = True, images: bool = True,
                  containers: bool = True) -> Iterator[None]:
        with contextlib.ExitStack() as stack:
            if layers:
                for ls in self._layer_stores():
                    stack.enter_context(ls.reading())
            if images:
                for ist in self._image_stores():
                    stack.enter_context(ist.reading())
            if containers:
                stack.enter_context(self.container_store.reading())
            yield

    def _layer_stores(self) -> list[LayerStore]:
        return [self.layer_store, *self.ro_layer_stores]

    def _image_stores(self) -> list[ImageStore]:
        return [self.image_store, *self.ro_image_stores]

    def _find_layer(self, ref: str) -> tuple[Layer, LayerStore] | None:
        for ls in self._layer_stores():
            layer = ls.lookup(ref)
            if layer is not None:
                return layer, ls
        return None

    def _find_image(self, ref: str) -> tuple[Image, ImageStore] | None:
        rw = self.image_store.lookup(ref)
        if rw is not None:
            return rw, self.image_store
        return self._find_ro_image(ref)

    def _find_ro_image(self, ref: str) -> tuple[Image, ImageStore] | None:
        """An image of the other image stores, unless the writable store shadows it: a
        pulled-up copy stands for it, and names removed from the copy no longer resolve."""
        for ist in self.ro_image_stores:
            image = ist.lookup(ref)
            if image is not None and image.id not in self.image_store.by_id:
                return image, ist
        return None

    # -- layers ------------------------------------------------------------------------------

    def create_layer(self, id: str | None = None, parent: str | None = None,
                     names: Sequence[str] = (), mount_label: str = "", writeable: bool = False,
                     options: LayerOptions | None = None) -> Layer:
        return self.put_layer(id, parent, names, mount_label, writeable, options, None)

    def put_layer(self, id: str | None = None, parent: str | None = None,
                  names: Sequence[str] = (), mount_label: str = "", writeable: bool = False,
                  options: LayerOptions | None = None, diff: BinaryIO | None = None) -> Layer:
        """Create a layer, optionally filled from a (compressed) tar stream, atomically.

        ``options.progress`` gets running totals of the bytes read from ``diff``
        (:mod:`cs_core.progress`)."""
        options = options or LayerOptions()
        fill = None
        if diff is not None:
            from cs_core.layer_import import put_layer_unlocked

            done = put_layer_unlocked(self, id, parent, list(names), mount_label, writeable,
                                      options, diff)
            if done is not None:
                return done
            def fill(layer: Layer) -> None:
                with flushing(self.driver.home):
                    self._apply_diff_locked(layer, diff, options)
        return self._put_layer(id, parent, names, mount_label, writeable, options, fill)

    def _put_layer(self, id: str | None, parent: str | None, names: Sequence[str],
                   mount_label: str, writeable: bool, options: LayerOptions,
                   fill: Callable[[Layer], None] | None,
                   commit: Callable[[Layer, CreateOpts], None] | None = None) -> Layer:
        """Create a layer and let ``fill`` give it content, all or nothing; or let ``commit``
        make its driver layer (durably) from a tree staged beforehand (cs_core.layer_import)."""
        ls = self.layer_store
        with ls.writing(), self._ro_layers_reading(), self.container_store.reading():
            parent_layer = self._new_layer_parent(parent)
            layer_id = ls.new_id(id)
            names = dedupe(names)
            ls.check_names_free(names)
            template: Layer | None = None
            if options.template_layer:
                # As Go: only a layer of this (read-write) store can be a template.
                template = ls.by_id.get(options.template_layer)
                if template is None:
                    raise LayerUnknown()
            uid_map, gid_map = self._layer_maps(options, parent_layer)
            if self.can_use_shifting(uid_map, gid_map):
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
                opts = CreateOpts(mount_label=mount_label, storage_opt=options.storage_opt,
                                  uid_map=tuple(uid_map), gid_map=tuple(gid_map))
                parent_maps = (parent_layer.uid_map, parent_layer.gid_map) if parent_layer else ([], [])
                if commit is not None:
                    # A tree built (and flushed) with no lock held: moved in, made durable.
                    commit(layer, opts)
                elif template is not None:
                    # Before the tree: syncing this small file first does not wait for the
                    # copy's data, which the syncfs below flushes once (a failure removes both).
                    copy_template_tar_split(ls, template.id, layer_id)
                    old_maps = (template.uid_map, template.gid_map)
                    # The driver re-owns the copy for the new maps itself (Go's store does it
                    # after a create from template): see GraphDriver.create_from_template.
                    self.driver.create_from_template(
                        layer_id, template.id, old_maps, layer.parent or None, parent_maps,
                        opts, writeable)
                else:
                    if writeable:
                        self.driver.create_read_write(layer_id, layer.parent or None, opts)
                    else:
                        self.driver.create(layer_id, layer.parent or None, opts)
                    if parent_maps != (uid_map, gid_map) and (uid_map or gid_map or parent_layer):
                        self.driver.update_layer_id_map(
                            layer_id, (parent_maps[0], parent_maps[1]), (uid_map, gid_map),
                            mount_label)
                for key, value in options.big_data.items():
                    ls.write_big_data(layer_id, key, value)
                    layer.big_data_names.append(key)
                if fill is not None:
                    fill(layer)
                if commit is None:
                    # The layer's files must be on disk before the record that says it is whole.
                    ls.sync_content()
                del layer.flags[INCOMPLETE]
                ls.save()
            except BaseException:
                self._discard_layer(layer)
                raise
            return attrs.evolve(layer)

    def _new_layer_parent(self, parent: str | None) -> Layer | None:
        """The layer ``parent`` names, if it may have a child (the layer stores and the
        container store held)."""
        if not parent:
            return None
        found = self._find_layer(parent)
        if found is None:
            raise LayerUnknown()  # Go names no layer here
        if self.container_store.by_layer(found[0].id) is not None:
            raise ParentIsContainer()
        return found[0]

    @contextlib.contextmanager
    def _ro_layers_reading(self) -> Iterator[None]:
        with contextlib.ExitStack() as stack:
            for ls in self.ro_layer_stores:
                stack.enter_context(ls.reading())
            yield

    def can_use_shifting(self, uid_map: Sequence[IDMap], gid_map: Sequence[IDMap]) -> bool:
        """Go ``canUseShifting``: the driver applies these maps at mount time.

        Layers are then kept with host IDs and never re-owned for a user namespace.
        """
        return (self.driver.supports_shifting(uid_map, gid_map)
                and is_contiguous(uid_map) and is_contiguous(gid_map))

    def _layer_maps(self, options: LayerOptions,
                    parent: Layer | None) -> tuple[list[IDMap], list[IDMap]]:
        uid_map = [] if options.host_uid_mapping else list(options.uid_map)
        gid_map = [] if options.host_gid_mapping else list(options.gid_map)
        if not options.host_uid_mapping and not uid_map:
            uid_map = list(parent.uid_map) if parent else list(self.uid_map)
        if not options.host_gid_mapping and not gid_map:
            gid_map = list(parent.gid_map) if parent else list(self.gid_map)
        return uid_map, gid_map

    def _discard_layer(self, layer: Layer) -> None:
        """Undo a failed create: data, driver layer, record (errors logged, not raised)."""
        ls = self.layer_store
        try:
            ls.delete_data(layer)
        except Exception as exc:
            log.error("while recovering from a failure, deleting layer %s: %s", layer.id, exc)
            return  # keep the incomplete record: the next write-access load retries
        if layer in ls.records:
            ls.remove(layer)
        with contextlib.suppress(Exception):
            ls.save()

    def apply_diff(self, to: str, stream: BinaryIO, progress: Progress | None = None) -> int:
        """Apply a (possibly compressed) tar stream to an existing layer; returns its size.

        ``progress`` gets running totals of the bytes read from ``stream``
        (:mod:`cs_core.progress`)."""
        ls = self.layer_store
        with ls.writing():
            layer = ls.get(to)

            def fill() -> None:
                with flushing(self.driver.home):
                    self._apply_diff_locked(layer, stream, LayerOptions(progress=progress))

            self._fill_existing_layer(layer, fill)
            return layer.uncompressed_size

    def _fill_existing_layer(self, layer: Layer, fill: Callable[[], None]) -> None:
        """Run ``fill`` to add content to an existing layer (the layer store write-locked).

        The layer is marked first (durably): if we die part-way, the next write-access load
        resets it instead of leaving half the files in it. Its content is flushed before the
        mark goes.
        """
        ls = self.layer_store
        empty = not layer.uncompressed_digest and not ls.tar_split_path(layer.id).exists()
        layer.flags[APPLYING] = APPLYING_TO_EMPTY if empty else "content"
        ls.save()
        try:
            fill()
            ls.sync_content()
        except BaseException:
            # Said once the reset is done, so the message never claims a reset that failed.
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
            raise
        del layer.flags[APPLYING]
        ls.save()

    def prepare_staged_layer(self, differ: Differ,
                             options: ApplyDiffOpts | None = None) -> StagedLayer:
        """Let ``differ`` fill a locked staging directory (overlay only; Go
        ``PrepareStagedLayer``). Follow with ``apply_staged_layer`` or ``cleanup_staged_layer``."""
        from cs_core import staged_layers

        return staged_layers.prepare(self, differ, options)

    def apply_staged_layer(self, args: ApplyStagedLayerOptions) -> Layer:
        """Move staged content into layer ``args.id`` (created, all or nothing, if missing)."""
        from cs_core import staged_layers

        return staged_layers.apply(self, args)

    def cleanup_staged_layer(self, staged: StagedLayer) -> None:
        """Discard staged content that will not be applied."""
        from cs_core import staged_layers

        staged_layers.cleanup(self, staged)

    def _apply_diff_locked(self, layer: Layer, stream: BinaryIO, options: LayerOptions) -> None:
        from cs_core.layer_import import extract_stream

        # Not fsynced on its own: both callers' sync_content flushes it with the layer's files.
        with self.layer_store.tar_split_writer(layer.id, durable=False) as ts_file:
            measured = extract_stream(stream, ts_file, lambda plain, writer: self.driver.apply_diff(
                layer.id, layer.parent or None, plain,
                ApplyDiffOpts(uid_map=tuple(layer.uid_map), gid_map=tuple(layer.gid_map),
                              mount_label=layer.mount_label, tar_split=writer)),
                options.progress)
        measured.record(layer, options)

    def layer(self, ref: str) -> Layer:
        with self._read_all(images=False, containers=False):
            found = self._find_layer(ref)
            if found is None:
                raise LayerUnknown()
            return attrs.evolve(found[0])

    def layers(self) -> list[Layer]:
        with self._read_all(images=False, containers=False):
            self.layer_store.refresh_mounts()
            seen: set[str] = set()
            out = []
            for ls in self._layer_stores():
                for layer in ls.records:
                    if layer.id not in seen:
                        seen.add(layer.id)
                        out.append(attrs.evolve(layer))
            return out

    def layer_size(self, ref: str) -> int:
        layer = self.layer(ref)
        return layer.uncompressed_size if layer.uncompressed_digest else -1

    def layers_by_compressed_digest(self, digest: str) -> list[Layer]:
        with self._read_all(images=False, containers=False):
            return [attrs.evolve(x) for ls in self._layer_stores()
                    for x in ls.by_compressed_digest(digest)]

    def layers_by_uncompressed_digest(self, digest: str) -> list[Layer]:
        with self._read_all(images=False, containers=False):
            return [attrs.evolve(x) for ls in self._layer_stores()
                    for x in ls.by_uncompressed_digest(digest)]

    def delete_layer(self, ref: str) -> None:
        """Delete a layer nobody uses (resolving names and prefixes before checking)."""
        ls = self.layer_store
        with ls.writing(), self.image_store.writing(), self.container_store.writing():
            layer = ls.lookup(ref)
            if layer is None:
                raise NotALayer()
            for other in ls.records:
                if other.parent == layer.id:
                    raise LayerHasChildren(f"used by layer {other.id}")
            for image in self.image_store.records:
                if image.top_layer == layer.id:
                    raise LayerUsedByImage(f"layer {layer.id} used by image {image.id}")
            for container in self.container_store.records:
                if container.layer == layer.id:
                    raise LayerUsedByContainer(f"layer {layer.id} used by container {container.id}")
            self._delete_layer_locked(layer)
            changed = False
            for image in self.image_store.records:
                if layer.id in image.mapped_top_layers:
                    image.mapped_top_layers.remove(layer.id)
                    changed = True
            if changed:
                self.image_store.save()

    def _delete_layer_locked(self, layer: Layer) -> None:
        """Mark incomplete (durably), remove the data, then drop the record."""
        ls = self.layer_store
        if layer.mount_count > 0:
            with contextlib.suppress(Exception):
                self.driver.put(layer.id)
            with ls.mounts_writing():
                layer.mount_count, layer.mount_point = 0, ""
        layer.flags[INCOMPLETE] = True
        ls.save()
        ls.delete_data(layer)
        # The removal must be on disk before the record goes: otherwise a power cut can
        # bring back the layer's directory with no record, which check reports as an
        # unaccounted layer (ext4's journal happens to order these; btrfs and xfs do not).
        syncfs(self.driver.home)
        ls.remove(layer)
        ls.save()

    def list_layer_big_data(self, ref: str) -> list[str]:
        return list(self.layer(ref).big_data_names)

    def layer_big_data(self, ref: str, key: str) -> bytes:
        with self._read_all(images=False, containers=False):
            found = self._find_layer(ref)
            if found is None:
                raise LayerUnknown()
            try:
                return found[1].read_big_data(found[0].id, key)
            except FileNotFoundError:
                raise FileNotFoundError(
                    f"locating item named {_go_quote(key)} for layer with ID "
                    f"{_go_quote(found[0].id)}: file does not exist") from None

    def set_layer_big_data(self, ref: str, key: str, data: bytes) -> None:
        ls = self.layer_store
        with ls.writing():
            layer = ls.get(ref)
            ls.write_big_data(layer.id, key, data)
            if key not in layer.big_data_names:
                layer.big_data_names.append(key)
                ls.save()

    # -- images ------------------------------------------------------------------------------

    def create_image(self, id: str | None = None, names: Sequence[str] = (), layer: str = "",
                     metadata: str = "", options: ImageOptions | None = None) -> Image:
        options = options or ImageOptions()
        with (self._read_all(images=False, containers=False), self._ro_images_reading(),
              self.image_store.writing()):
            top = ""
            if layer:
                found = self._find_layer(layer)
                if found is None:
                    raise LayerUnknown()
                top = found[0].id
            ist = self.image_store
            try:
                image_id = ist.new_id(id)
            except DuplicateID as exc:
                raise exc.wrap(f"an image with ID {_go_quote(id or '')} already exists") from None
            names = dedupe(names)
            pulled = next(((ro.by_id[image_id], ro) for ro in self.ro_image_stores
                           if image_id in ro.by_id), None)
            # An ID of a read-only store's image starts from that record (HEAD's pull-up).
            image = (Image(id=image_id) if pulled is None
                     else self._pull_up_image(*pulled, names=()))
            image.top_layer = top
            image.digest = options.digest or image.digest
            image.metadata = metadata or options.metadata or image.metadata
            image.created = options.creation_date or image.created
            image.flags = dict(options.flags)
            image.names_history += options.names_history
            for key, value in options.big_data.items():
                self._set_image_big_data_locked(image, key, value, None)
            recompute_digests(image)
            ist.add(image)
            # Names are given only now, taken from any other image holding them: HEAD's
            # bats suite (image-mount.bats) re-uses a name for a second image, where Go
            # 1.43 refuses it as a duplicate (NOTES.md).
            if pulled is None:
                ist.update_names(image, names, "set")
            else:
                ist.update_names(image, [*pulled[0].names, *names], "add")
                _note_names_history(image)
            ist.save()
            return attrs.evolve(image)

    def image(self, ref: str) -> Image:
        with self._read_all(layers=False, containers=False):
            found = self._find_image(ref)
            if found is None:
                raise ImageUnknown()
            return attrs.evolve(found[0])

    def images(self) -> list[Image]:
        with self._read_all(layers=False, containers=False):
            out = [attrs.evolve(i) for i in self.image_store.records]
            seen = {i.id for i in out}
            for ist in self.ro_image_stores:
                for image in ist.records:
                    if image.id not in seen:
                        seen.add(image.id)
                        out.append(attrs.evolve(image))
            return out

    def images_by_top_layer(self, ref: str) -> list[Image]:
        layer = self.layer(ref)
        with self._read_all(layers=False, containers=False):
            return [attrs.evolve(i) for ist in self._image_stores() for i in ist.by_top_layer(layer.id)]

    def images_by_digest(self, digest: str) -> list[Image]:
        with self._read_all(layers=False, containers=False):
            return [attrs.evolve(i) for ist in self._image_stores() for i in ist.by_digest(digest)]

    def image_size(self, ref: str) -> int:
        with self._read_all(containers=False):
            found = self._find_image(ref)
            if found is None:
                raise ImageUnknown()
            image = found[0]
            total = 0
            seen: set[str] = set()
            for top in [image.top_layer, *image.mapped_top_layers]:
                current = top
                while current and current not in seen:
                    seen.add(current)
                    hit = self._find_layer(current)
                    if hit is None:
                        raise LayerUnknown()
                    layer = hit[0]
                    if layer.uncompressed_digest:
                        total += layer.uncompressed_size
                    else:
                        total += self._driver_diff_size(layer)
                    current = layer.parent
            for key in image.big_data_names:
                total += image.big_data_sizes.get(key, 0)
            return total

    def delete_image(self, ref: str, commit: bool = True) -> list[str]:
        """Delete an image and the layers only it uses; returns those layer IDs.

        As at HEAD, every writable image store holding it loses it (with a split image
        store, an image may still sit in the graph root's store).
        """
        ls, cs = self.layer_store, self.container_store
        with contextlib.ExitStack() as stack:
            stack.enter_context(ls.writing())
            for ist in self.rw_image_stores:
                stack.enter_context(ist.writing())
            stack.enter_context(cs.writing())
            hits = [(image, ist) for ist in self.rw_image_stores
                    if (image := ist.lookup(ref)) is not None]
            if not hits:
                raise NotAnImage()
            # Top layers of the other images of every writable store: HEAD looks only in the
            # store being walked, so with a split store it could delete a layer that an image
            # of the other store still uses.
            other_tops: set[str] = set()
            for ist in self.rw_image_stores:
                for other in ist.records:
                    if all(other.id != image.id for image, _ in hits):
                        other_tops.add(other.top_layer)
                        other_tops.update(other.mapped_top_layers)
            to_remove: list[str] = []
            for image, _ in hits:
                for container in cs.records:
                    if container.image == image.id:
                        raise ImageUsedByContainer(f"image used by {container.id}")
                to_remove = dedupe([*to_remove, *self._layers_only_for(image, other_tops)])
            if commit:
                # Image records first, then their layers: a crash in between strands them,
                # so the next open finishes the job (cs_core.intents).
                intent = self.layer_intents.begin(to_remove)
                try:
                    for image, ist in hits:
                        ist.remove(image)
                        ist.save()
                        ist.remove_data_dir(image.id)
                    for layer_id in to_remove:
                        doomed = ls.by_id.get(layer_id)
                        if doomed is not None:
                            self._delete_layer_locked(doomed)
                finally:
                    intent.end()
            return to_remove

    def _layers_only_for(self, image: Image, other_tops: set[str]) -> list[str]:
        """The image's layers that no container, child or other image (``other_tops``) needs."""
        ls, cs = self.layer_store, self.container_store
        children: dict[str, list[str]] = {}
        for layer in ls.records:
            children.setdefault(layer.parent, []).append(layer.id)
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

    def _set_image_big_data_locked(self, image: Image, key: str, data: bytes,
                                   digest_manifest: Callable[[bytes], str] | None) -> None:
        ist = self.image_store
        if key.startswith("manifest"):
            if digest_manifest is None:
                digest = sha256_digest(data)
            else:
                try:
                    digest = digest_manifest(data)
                except Exception as exc:
                    raise DigestUnknown(f"digesting manifest: {exc}") from exc
        else:
            digest = sha256_digest(data)
        # Staged: moved into place by the save() that records its size and digest.
        ist.stage_big_data(image.id, key, data)
        if key not in image.big_data_names:
            image.big_data_names.append(key)
        image.big_data_sizes[key] = len(data)
        image.big_data_digests[key] = digest
        recompute_digests(image)

    def set_image_big_data(self, ref: str, key: str, data: bytes,
                           digest_manifest: Callable[[bytes], str] | None = None) -> None:
        ist = self.image_store
        with ist.writing():
            image = ist.lookup(ref)
            if image is None:
                raise ImageUnknown()
            self._set_image_big_data_locked(image, key, data, digest_manifest)
            ist.save()

    def list_image_big_data(self, ref: str) -> list[str]:
        return list(self._locate_image(ref).big_data_names)

    def _locate_image(self, ref: str) -> Image:
        """``image(ref)`` with the context Go's callers put on an unknown image."""
        try:
            return self.image(ref)
        except ImageUnknown as exc:
            raise exc.wrap(f"locating image with ID {_go_quote(ref)}") from None

    def image_big_data(self, ref: str, key: str) -> bytes:
        with self._read_all(layers=False, containers=False):
            found = self._find_image(ref)
            if found is None:
                raise ImageUnknown()
            if key not in found[0].big_data_names:
                raise FileNotFoundError(
                    f"locating item named {_go_quote(key)} for image with ID "
                    f"{_go_quote(found[0].id)} (consider removing the image to resolve the "
                    f"issue): file does not exist")
            return found[1].read_big_data(found[0].id, key)

    def image_big_data_size(self, ref: str, key: str) -> int:
        image = self.image(ref)
        if key in image.big_data_sizes:
            return image.big_data_sizes[key]
        if key not in image.big_data_names:
            raise SizeUnknown()
        return len(self.image_big_data(ref, key))

    def image_big_data_digest(self, ref: str, key: str) -> str:
        image = self.image(ref)
        digest = image.big_data_digests.get(key)
        if not digest:
            raise DigestUnknown()
        return digest

    def image_directory(self, ref: str) -> str:
        path = self.graph_root / f"{self.driver_name}-images" / self.image(ref).id / "userdata"
        atomic.makedirs(path)
        return str(path)

    def image_run_directory(self, ref: str) -> str:
        path = self.run_root / f"{self.driver_name}-images" / self.image(ref).id / "userdata"
        atomic.makedirs(path)
        return str(path)

    # -- containers --------------------------------------------------------------------------

    def add_mapped_top_layer(self, image: str, layer: str) -> None:
        """Record an ID-mapped copy of the image's top layer (Go ``addMappedTopLayer``)."""
        with self.image_store.writing():
            record = self.image_store.get(image)
            if layer not in record.mapped_top_layers:
                record.mapped_top_layers.append(layer)
                self.image_store.save()

    def create_container(self, id: str | None = None, names: Sequence[str] = (),
                         image: str = "", layer: str | None = None, metadata: str = "",
                         options: ContainerOptions | None = None) -> Container:
        options = options or ContainerOptions()
        if not (options.auto_userns or options.uid_map or options.gid_map or image):
            return self._create_container(id, names, image, layer, metadata, options)
        # As Go: from choosing maps (free ranges, or an existing mapped copy of the top layer,
        # which a container without maps on a mapped image needs too) until the container
        # record holds them, so that two creates cannot both pick the same range or both
        # make a copy. Explicit maps are not checked against auto ones.
        with self.userns_lock.write_locked():
            return self._create_container(id, names, image, layer, metadata, options)

    def _create_container(self, id: str | None, names: Sequence[str], image: str,
                          layer: str | None, metadata: str,
                          options: ContainerOptions) -> Container:
        cs = self.container_store
        image_id, top_layer = "", ""
        image_maps: tuple[list[IDMap], list[IDMap]] = ([], [])
        img: Image | None = self._locate_image(image) if image else None
        if options.auto_userns:
            uid_map, gid_map = auto_userns_maps(self, options.auto_userns_opts, img)
            options = attrs.evolve(options, uid_map=uid_map, gid_map=gid_map,
                                   host_uid_mapping=False, host_gid_mapping=False)
        if img is not None:
            image_id, top_layer = img.id, img.top_layer
            if top_layer:
                from cs_core.mapped_layers import top_layer_for_mapping

                # Go looks for a top layer owned for the container's maps even when it
                # asks for none: a container without maps on a mapped image gets a
                # host-owned copy, and so no maps (Go's ContainerParentOwners is then []).
                top = top_layer_for_mapping(
                    self, img, [] if options.host_uid_mapping else list(options.uid_map),
                    [] if options.host_gid_mapping else list(options.gid_map))
                top_layer = top.id
                image_maps = (top.uid_map, top.gid_map)
        with cs.reading():
            names = dedupe(names)
            container_id = cs.new_id(id)
            for name in names:
                holder = cs.by_name.get(name)
                if holder is not None:
                    raise DuplicateName(
                        f'the container name "{name}" is already in use by {holder.id}. You have '
                        f"to remove that container to be able to reuse that name"
                    )
        uid_map = options.uid_map or ([] if options.host_uid_mapping else image_maps[0] or self.uid_map)
        gid_map = options.gid_map or ([] if options.host_gid_mapping else image_maps[1] or self.gid_map)
        volatile = options.volatile or self.transient
        from cs_core.records.base import generate_id

        layer = layer or generate_id()
        # Layer first, record second: if we die in between, the next open removes the layer.
        intent = self.layer_intents.begin([layer])
        try:
            rw_layer = self.put_layer(
                layer, top_layer or None, (), options.mount_label, True,
                LayerOptions(uid_map=list(uid_map), gid_map=list(gid_map), volatile=volatile,
                             host_uid_mapping=options.host_uid_mapping,
                             host_gid_mapping=options.host_gid_mapping,
                             storage_opt=options.storage_opt),
            )
        except BaseException:
            intent.end()
            raise
        try:
            with cs.writing():
                cs.new_id(container_id)  # still free?
                for name in names:
                    holder = cs.by_name.get(name)
                    if holder is not None:
                        raise DuplicateName(
                            f'the container name "{name}" is already in use by {holder.id}. You '
                            f"have to remove that container to be able to reuse that name"
                        )
                flags: dict[str, object] = {
                    **options.flags, "MountLabel": options.mount_label,
                    "ProcessLabel": options.process_label,
                }
                if options.mount_opts:
                    flags["MountOpts"] = list(options.mount_opts)
                if volatile:
                    flags["Volatile"] = True
                container = Container(
                    id=container_id, names=list(names), image=image_id, layer=rw_layer.id,
                    metadata=metadata, created=utcnow(), uid_map=list(uid_map),
                    gid_map=list(gid_map), flags=flags, volatile_store=volatile,
                )
                for key, value in options.big_data.items():
                    self._set_container_big_data_locked(container, key, value)
                cs.add(container)
                cs.save()
                return attrs.evolve(container)
        except BaseException:
            with contextlib.suppress(Exception):
                self.delete_layer(rw_layer.id)
            raise
        finally:
            intent.end()

    def container(self, ref: str) -> Container:
        with self.container_store.reading():
            return attrs.evolve(self.container_store.get(ref))

    def containers(self) -> list[Container]:
        with self.container_store.reading():
            return [attrs.evolve(c) for c in self.container_store.records]

    def container_by_layer(self, ref: str) -> Container:
        layer = self.layer(ref)
        with self.container_store.reading():
            found = self.container_store.by_layer(layer.id)
            if found is None:
                raise ContainerUnknown()
            return attrs.evolve(found)

    def container_size(self, ref: str) -> int:
        container = self.container(ref)
        total = 0
        with contextlib.suppress(StorageError):
            layer = self.layer(container.layer)
            total += self._driver_diff_size(layer)
        total += sum(container.big_data_sizes.get(k, 0) for k in container.big_data_names)
        # Only the userdata directories, as Go: the big data files beside them are counted above.
        for base in (self.graph_root, self.run_root):
            total += walk.disk_usage(base / f"{self.driver_name}-containers" / container.id / "userdata")
        return total

    def delete_container(self, ref: str) -> None:
        ls, cs = self.layer_store, self.container_store
        with ls.writing(), self.image_store.reading(), cs.writing():
            container = cs.lookup(ref)
            if container is None:
                raise NotAContainer()
            self._delete_container_locked(container, container.id)

    def _delete_container_locked(self, container: Container, data_dir: str) -> None:
        """Drop the record, then its layer, then ``<driver>-containers/<data_dir>`` in both roots.

        The record goes first: a crash in between then leaves an unreferenced layer (removed by
        the next open, see cs_core.intents), never a container whose layer is gone.
        """
        ls, cs = self.layer_store, self.container_store
        intent = self.layer_intents.begin([container.layer])
        try:
            cs.remove(container)
            cs.save()
            layer = ls.by_id.get(container.layer)
            if layer is not None:
                self._delete_layer_locked(layer)
        finally:
            intent.end()
        for base in (self.graph_root, self.run_root):
            atomic.remove_tree(base / f"{self.driver_name}-containers" / data_dir)

    def _set_container_big_data_locked(self, container: Container, key: str, data: bytes) -> None:
        # Staged: moved into place by the save() that records its size and digest.
        self.container_store.stage_big_data(container.id, key, data, durable=not container.volatile)
        if key not in container.big_data_names:
            container.big_data_names.append(key)
        container.big_data_sizes[key] = len(data)
        container.big_data_digests[key] = sha256_digest(data)

    def set_container_big_data(self, ref: str, key: str, data: bytes) -> None:
        cs = self.container_store
        with cs.writing():
            container = cs.get(ref)
            self._set_container_big_data_locked(container, key, data)
            cs.save()

    def list_container_big_data(self, ref: str) -> list[str]:
        return list(self.container(ref).big_data_names)

    def container_big_data(self, ref: str, key: str) -> bytes:
        with self.container_store.reading():
            container = self.container_store.get(ref)
            try:
                return self.container_store.read_big_data(container.id, key)
            except FileNotFoundError:
                path = self.container_store.data_path(container.id, key)
                raise FileNotFoundError(f"open {path}: no such file or directory") from None

    def container_big_data_size(self, ref: str, key: str) -> int:
        container = self.container(ref)
        if key in container.big_data_sizes:
            return container.big_data_sizes[key]
        return len(self.container_big_data(ref, key))

    def container_big_data_digest(self, ref: str, key: str) -> str:
        container = self.container(ref)
        if key in container.big_data_digests:
            return container.big_data_digests[key]
        if key not in container.big_data_names:
            raise DigestUnknown()
        return sha256_digest(self.container_big_data(ref, key))

    def container_directory(self, ref: str) -> str:
        container = self.container(ref)
        path = self.graph_root / f"{self.driver_name}-containers" / container.id / "userdata"
        atomic.makedirs(path)
        return str(path)

    def container_run_directory(self, ref: str) -> str:
        container = self.container(ref)
        path = self.run_root / f"{self.driver_name}-containers" / container.id / "userdata"
        atomic.makedirs(path)
        return str(path)

    # -- generic -----------------------------------------------------------------------------

    def exists(self, ref: str) -> bool:
        with self._read_all():
            return (self._find_layer(ref) is not None or self._find_image(ref) is not None
                    or self.container_store.lookup(ref) is not None)

    def lookup(self, ref: str) -> str:
        with self._read_all():
            if (hit := self._find_layer(ref)) is not None:
                return hit[0].id
            if (img := self._find_image(ref)) is not None:
                return img[0].id
            if (c := self.container_store.lookup(ref)) is not None:
                return c.id
        raise LayerUnknown()

    def metadata(self, ref: str) -> str:
        with self._read_all():
            if (hit := self._find_layer(ref)) is not None:
                return hit[0].metadata
            if (img := self._find_image(ref)) is not None:
                return img[0].metadata
            if (c := self.container_store.lookup(ref)) is not None:
                return c.metadata
        raise NotAnID()

    def set_metadata(self, ref: str, metadata: str) -> None:
        ls, ist, cs = self.layer_store, self.image_store, self.container_store
        with ls.writing(), ist.writing(), cs.writing():
            for store in (ls, ist, cs):
                record = store.lookup(ref)
                if record is not None:
                    record.metadata = metadata  # type: ignore[union-attr]
                    store.save()
                    return
        raise NotAnID()

    def names(self, ref: str) -> list[str]:
        with self._read_all():
            if (hit := self._find_layer(ref)) is not None:
                return list(hit[0].names)
            if (img := self._find_image(ref)) is not None:
                return list(img[0].names)
            if (c := self.container_store.lookup(ref)) is not None:
                return list(c.names)
        raise LayerUnknown()

    def set_names(self, ref: str, names: Sequence[str]) -> None:
        self._update_names(ref, names, "set")

    def add_names(self, ref: str, names: Sequence[str]) -> None:
        self._update_names(ref, names, "add")

    def remove_names(self, ref: str, names: Sequence[str]) -> None:
        self._update_names(ref, names, "remove")

    def _update_names(self, ref: str, names: Sequence[str], op: str) -> None:
        ls, ist, cs = self.layer_store, self.image_store, self.container_store
        with ls.writing(), self._ro_images_reading(), ist.writing(), cs.writing():
            layer = ls.lookup(ref)
            if layer is not None:
                ls.update_names(layer, names, op)
                ls.save()
                return
            image = ist.lookup(ref)
            if image is None:
                # Names of an image in a read-only store can change: the record is copied
                # ("pulled up") into the writable store, whose copy then shadows it.
                pulled = self._find_ro_image(ref)
                if pulled is not None:
                    image = self._pull_up_image(*pulled, names=pulled[0].names)
                    ist.add(image)
            if image is not None:
                ist.update_names(image, names, op)
                _note_names_history(image)
                ist.save()
                return
            container = cs.lookup(ref)
            if container is not None:
                cs.update_names(container, names, op)
                cs.save()
                return
        raise LayerUnknown()

    @contextlib.contextmanager
    def _ro_images_reading(self) -> Iterator[None]:
        with contextlib.ExitStack() as stack:
            for ist in self.ro_image_stores:
                stack.enter_context(ist.reading())
            yield

    def _pull_up_image(self, image: Image, source: ImageStore, *,
                       names: Sequence[str]) -> Image:
        """Copy a read-only store's image, with ``names``, into the writable store (HEAD's
        pull-up: metadata, dates, digest, names history, flags and big data; the caller holds
        the writable image store's write lock, adds the copy and saves)."""
        ist = self.image_store
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
            ist.stage_big_data(copy.id, key, data)
            copy.big_data_names.append(key)
            copy.big_data_sizes[key] = len(data)
            copy.big_data_digests[key] = image.big_data_digests.get(key) or sha256_digest(data)
        recompute_digests(copy)
        return copy

    def delete(self, ref: str) -> None:
        """Delete whatever ``ref`` names, without safety checks (Go ``Store.Delete``)."""
        ls, ist, cs = self.layer_store, self.image_store, self.container_store
        with ls.writing(), ist.writing(), cs.writing():
            container = cs.lookup(ref)
            if container is not None:
                # Go's Delete removes only the userdata directory, not the big data beside it.
                self._delete_container_locked(container, f"{container.id}/userdata")
                return
            image = ist.lookup(ref)
            if image is not None:
                ist.remove(image)
                ist.save()
                ist.remove_data_dir(image.id)
                return
            layer = ls.lookup(ref)
            if layer is not None:
                self._delete_layer_locked(layer)
                return
        raise LayerUnknown()  # Go's Delete tries layers last and reports their miss

    def wipe(self) -> None:
        ls, ist, cs = self.layer_store, self.image_store, self.container_store
        with ls.writing(), ist.writing(), cs.writing():
            for container in list(cs.records):
                cs.remove_data_dir(container.id)
                for base in (self.graph_root, self.run_root):
                    atomic.remove_tree(base / f"{self.driver_name}-containers" / container.id)
            cs.records = []
            cs.reindex()
            cs.save()
            for image in list(ist.records):
                ist.remove_data_dir(image.id)
            ist.records = []
            ist.reindex()
            ist.save()
            for layer in sorted(ls.records, key=lambda x: x.created, reverse=True):
                self._delete_layer_locked(layer)
            for leftover in self.driver.list_layers():
                self.driver.remove(leftover)

    # -- mounts ------------------------------------------------------------------------------

    def mount(self, ref: str, mount_label: str = "", options: Sequence[str] = ()) -> str:
        """Mount a container's or layer's tree (reference counted); returns the path."""
        container = None
        with self.container_store.reading():
            container = self.container_store.lookup(ref)
        ls = self.layer_store
        with self._using_driver() as driver, ls.writing():
            if container is not None:
                layer = ls.get(container.layer)
                opts = MountOpts(
                    mount_label=mount_label or str(container.flags.get("MountLabel", "")),
                    options=tuple(options) or tuple(container.flags.get("MountOpts", []) or []),
                    uid_map=tuple(container.uid_map), gid_map=tuple(container.gid_map),
                    volatile=container.volatile and not self.options.disable_volatile,
                )
            else:
                found = ls.lookup(ref)
                if found is None:
                    if any(ro.lookup(ref) for ro in self.ro_layer_stores):
                        raise StoreIsReadOnly("mounting read/only store images is not allowed")
                    # HEAD's bats suite mounts an image by name or ID: its top layer, and
                    # read-only as `mount --ro` does, so an image is never changed in place.
                    found = self._image_top_layer(ls, ref)
                    if found is None:
                        raise LayerUnknown()
                    options = (*options, "ro")
                layer = found
                opts = MountOpts(mount_label=mount_label or layer.mount_label, options=tuple(options))
            if opts.uid_map or opts.gid_map:
                opts = attrs.evolve(
                    opts, disable_shifting=not self.can_use_shifting(opts.uid_map, opts.gid_map))
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

    def unmount(self, ref: str, force: bool = False) -> bool:
        """Drop one mount reference (all with ``force``); returns whether still mounted."""
        container = None
        with self.container_store.reading():
            container = self.container_store.lookup(ref)
        ls = self.layer_store
        with self._using_driver() as driver, ls.writing():
            layer = ls.get(container.layer) if container is not None else ls.lookup(ref)
            if layer is None:
                path = os.path.normpath(ref)
                layer = next((x for x in ls.records if x.mount_point == path), None)
                if layer is None:
                    layer = self._image_top_layer(ls, ref)
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

    def mounted(self, ref: str) -> int:
        """Mount count of a container's layer, a layer, or (what ``mount --ro IMAGE``
        mounted) an image's top layer: HEAD's bats suite asks ``mounted IMAGE``."""
        with self.container_store.reading():
            container = self.container_store.lookup(ref)
        ls = self.layer_store
        with ls.reading():
            ls.refresh_mounts()
            layer = ls.lookup(container.layer if container is not None else ref)
            if layer is None and container is None:
                layer = self._image_top_layer(ls, ref)
            if layer is None:
                raise LayerUnknown()
            return layer.mount_count

    def _image_top_layer(self, ls: LayerStore, ref: str) -> Layer | None:
        """The writable store's record of image ``ref``'s top layer (caller reads ``ls``)."""
        with self._read_all(layers=False, containers=False):
            found = self._find_image(ref)
        return ls.lookup(found[0].top_layer) if found is not None and found[0].top_layer else None

    @contextlib.contextmanager
    def mounting(self, ref: str, mount_label: str = "",
                 options: Sequence[str] = ()) -> Iterator[str]:
        """``with store.mounting(ref) as path:`` mounts as :meth:`mount` does and unmounts
        on leaving the block, even when it raises (:meth:`mounted` is Go's mount count)."""
        path = self.mount(ref, mount_label, options)
        try:
            yield path
        finally:
            self.unmount(ref)

    def mount_image(self, ref: str, options: Sequence[str] = (), mount_label: str = "") -> str:
        if "rw" in options:
            raise StorageError("mount options may not contain rw when mounting an image")
        image = self._locate_image(ref)
        if not image.top_layer:
            raise LayerUnknown(f"image {image.id} has no top layer")
        return self.mount(image.top_layer, mount_label, (*options, "ro"))

    def unmount_image(self, ref: str, force: bool = False) -> bool:
        image = self.image(ref)
        return self.unmount(image.top_layer, force)

    # -- content -----------------------------------------------------------------------------

    def _diff_pair(self, from_: str | None, to: str) -> tuple[Layer, str | None, IDMapPair]:
        found = self._find_layer(to)
        if found is None:
            raise LayerUnknown()
        return (found[0], *self._compared_with(found[0], from_))

    def _compared_with(self, layer: Layer, from_: str | None = None) -> tuple[str | None, IDMapPair]:
        """The layer a diff of ``layer`` is taken against, and that layer's maps (Go hands
        the driver each layer's own maps, and it reads each tree's owners through them)."""
        parent_id = from_ or layer.parent
        if not parent_id:
            return None, NO_MAPS
        parent = self._find_layer(parent_id)
        if parent is None:
            if from_:
                raise LayerUnknown()
            return parent_id, NO_MAPS
        return parent[0].id, parent[0].id_maps

    def _driver_diff_size(self, layer: Layer) -> int:
        parent, parent_maps = self._compared_with(layer)
        return self.driver.diff_size(layer.id, parent, layer.id_maps, parent_maps)

    def changes(self, from_: str | None, to: str) -> list[Change]:
        with self._using_driver() as driver, self.layer_store.writing(), self._ro_layers_reading():
            layer, parent, parent_maps = self._diff_pair(from_, to)
            return driver.changes(layer.id, parent, layer.id_maps, parent_maps)

    def diff_size(self, from_: str | None, to: str) -> int:
        with self._using_driver() as driver, self.layer_store.writing(), self._ro_layers_reading():
            layer, parent, parent_maps = self._diff_pair(from_, to)
            return driver.diff_size(layer.id, parent, layer.id_maps, parent_maps)

    def diff(self, from_: str | None, to: str, out: BinaryIO,
             compression: Compression | None = None,
             progress: Progress | None = None) -> None:
        """Write the layer's changes as a tar stream; bit-exact when tar-split allows.

        ``progress`` gets running totals of the bytes written to ``out`` (compressed, if
        ``compression`` says so; :mod:`cs_core.progress`). See also :meth:`diff_reader`."""
        import gzip

        from cs_core.archive.compression import Compression, compress_stream
        from cs_core.archive.tarsplit import reassemble

        with self._using_driver() as driver, self.layer_store.writing(), self._ro_layers_reading():
            layer, parent, parent_maps = self._diff_pair(from_, to)
            if compression is None:
                compression = Compression(layer.compression)
            counted = CountingWriter(out, progress)
            sink = (compress_stream(counted, compression)  # type: ignore[arg-type]
                    if compression != Compression.NONE else counted)
            try:
                ts_path = self._tar_split_for(layer)
                if parent == (layer.parent or None) and ts_path is not None:
                    getter = driver.diff_getter(layer.id)
                    try:
                        with gzip.open(ts_path, "rb") as ts:
                            reassemble(ts, getter.open, sink)  # type: ignore[arg-type]
                    finally:
                        getter.close()
                else:
                    stream = driver.diff(layer.id, parent, layer.uid_map, layer.gid_map,
                                         parent_maps)
                    try:
                        shutil.copyfileobj(stream, sink, 1 << 20)  # type: ignore[arg-type]
                    finally:
                        stream.close()
            finally:
                if sink is not counted:
                    sink.close()
            counted.finish()

    def diff_reader(self, from_: str | None, to: str,
                    compression: Compression | None = None) -> BinaryIO:
        """:meth:`diff` as a readable file (``with store.diff_reader(id) as f:``), streamed
        by a thread; a failure is raised by the read that reaches the end. As with Go's
        ``Diff``, the layer store stays locked until the file is read to its end or closed:
        finish with it before calling this store again (other calls wait for it, so calling
        from the reading thread would wait forever). See also :meth:`iter_diff`."""
        from cs_core.handles import diff_reader

        return diff_reader(self, from_, to, compression)

    def iter_diff(self, from_: str | None, to: str, compression: Compression | None = None,
                  chunk_size: int = 1 << 20) -> Iterator[bytes]:
        """:meth:`diff` as chunks of bytes (``for chunk in store.iter_diff(id):``)."""
        from cs_core.handles import read_chunks

        return read_chunks(self.diff_reader(from_, to, compression), chunk_size)

    def _tar_split_for(self, layer: Layer) -> Path | None:
        for ls in self._layer_stores():
            if layer.id in ls.by_id:
                path = ls.tar_split_path(layer.id)
                return path if path.exists() else None
        return None

    # -- ownership of a mount's ancestors ---------------------------------------------------

    def layer_parent_owners(self, ref: str) -> tuple[list[int], list[int]]:
        """Host UIDs/GIDs owning the mount point's ancestors that the layer's maps cannot
        represent (Go ``LayerParentOwners``): a user namespace cannot traverse them."""
        from cs_core.errors import LayerNotMounted
        from cs_core.idmap import representable_on_host

        ls = self.layer_store
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

    def container_parent_owners(self, ref: str) -> tuple[list[int], list[int]]:
        return self.layer_parent_owners(self.container(ref).layer)

    # -- driver-level layers (no records) ----------------------------------------------------

    def storage_layers(self) -> list[str]:
        """Layer IDs the driver holds data for, records or not."""
        with self._using_driver() as driver:
            return driver.list_layers()

    def create_storage_layer(self, id: str | None = None, parent: str | None = None,
                             mount_label: str = "", writeable: bool = False,
                             uid_map: Sequence[IDMap] = (), gid_map: Sequence[IDMap] = ()) -> str:
        """Create a driver layer without a record (Go CLI ``create-storage-layer``)."""
        from cs_core.records.base import generate_id

        layer_id = id or generate_id(self.driver.exists)
        opts = CreateOpts(mount_label=mount_label, uid_map=tuple(uid_map), gid_map=tuple(gid_map))
        with self._using_driver() as driver:
            if writeable:
                driver.create_read_write(layer_id, parent, opts)
            else:
                driver.create(layer_id, parent, opts)
        return layer_id

    # -- misc --------------------------------------------------------------------------------

    def status(self) -> list[tuple[str, str]]:
        with self._using_driver() as driver:
            return list(driver.status())

    def version(self) -> list[tuple[str, str]]:
        return [("Version", VERSION)]

    def shutdown(self, force: bool = False) -> list[str]:
        """Unmount everything (with ``force``) and release driver resources."""
        ls = self.layer_store
        with self.graph_lock.write_locked(), ls.writing():
            mounted = [layer.id for layer in ls.records if layer.mount_count > 0]
            if mounted and not force:
                raise LayerUsedByContainer("a layer is mounted")
            if mounted:
                with ls.mounts_writing():
                    for layer in ls.records:
                        if layer.mount_count > 0:
                            with contextlib.suppress(Exception):
                                self.driver.put(layer.id)
                            layer.mount_count, layer.mount_point = 0, ""
            self._graph_token = self.graph_lock.record_write()
            self.driver.cleanup()
            return mounted

    def check(self, options: CheckOptions | None = None) -> CheckReport:
        """Report damaged layers, images and containers (Go ``Check``; see cs_core.check)."""
        from cs_core.check import check

        return check(self, options)

    def repair(self, report: CheckReport,
               options: RepairOptions | None = None) -> list[StorageError]:
        """Remove what ``report`` found damaged; returns what could not be removed."""
        from cs_core.check import repair

        return repair(self, report, options)

    def garbage_collect(self) -> None:
        """Remove data no record refers to (directories of deleted items, orphan layers)."""
        import re

        hex64 = re.compile(r"^[0-9a-f]{64}$")
        ls, ist, cs = self.layer_store, self.image_store, self.container_store
        with ls.writing(), ist.writing(), cs.writing():
            for base in (cs.directory,):
                for entry in os.listdir(base):
                    if hex64.match(entry) and entry not in cs.by_id:
                        atomic.remove_tree(base / entry)
            for entry in os.listdir(ist.directory):
                if hex64.match(entry) and entry not in ist.by_id:
                    atomic.remove_tree(ist.directory / entry)
            for layer_id in self.driver.list_layers():
                if layer_id not in ls.by_id:
                    with contextlib.suppress(FileNotFoundError):
                        ls.tar_split_path(layer_id).unlink()
                    ls.remove_data_dir(layer_id)
                    self.driver.remove(layer_id)

    def dedup(self, hash_method: str = "crc") -> int:
        """Share extents of identical files in layers that images use; return bytes shared."""
        from cs_core.dedup import HashMethod, dedup_dirs

        method = HashMethod.parse(hash_method)
        with self._read_all(containers=False):
            by_id = {layer.id: layer for layer in self.layers()}
            wanted: set[str] = set()
            for image in self.images():
                pending = [image.top_layer, *image.mapped_top_layers]
                while pending:
                    layer_id = pending.pop()
                    if layer_id and layer_id not in wanted and layer_id in by_id:
                        wanted.add(layer_id)
                        pending.append(by_id[layer_id].parent)
            dirs: list[Path] = []
            for layer_id in sorted(wanted):
                try:
                    dirs.append(self.driver.layer_dir(layer_id))
                except NotImplementedError:
                    return 0  # a driver without plain directories dedups nothing, as in Go
            return dedup_dirs(dirs, method)

    def close(self) -> None:
        """Release the driver's resources (overlay's private mount of its home) unless a
        layer is mounted, as Go's ``Shutdown(false)``; later calls raise ``StoreClosed``."""
        from cs_core.handles import close_store

        close_store(self)

    def free(self) -> None:
        """Go's ``Free()``: forget the handle, leaving the driver as it is (the CLI's end)."""

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _note_names_history(image: Image) -> None:
    """Put the image's current names at the front of its history, as Go's updateNames does
    (each name in turn, so the last one ends up first)."""
    for name in image.names:
        image.names_history = dedupe([name, *image.names_history])


def _go_quote(text: str) -> str:
    """Quote as Go's %q does for the printable text IDs and keys are made of."""
    return json.dumps(text, ensure_ascii=False)
