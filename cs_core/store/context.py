"""The store context: what every room of the store shares.

Roots, the writable and read-only record stores, the one driver handle, and the lock helpers
that take Go's order (graph lock → layer stores → image stores → container store). The
``Store`` façade is this context plus the operations; the modules behind it take a
``StoreContext`` so none of them needs the façade.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from cs_core import atomic, lockfile, rootdirs
from cs_core.config import StoreOptions
from cs_core.drivers.base import DriverConfig, GraphDriver
from cs_core.drivers.plugins import PluginRegistry
from cs_core.errors import IncompleteOptions, StorageError
from cs_core.model import IDMap, Image, Layer
from cs_core.records.containers import ContainerStore
from cs_core.records.images import ImageStore
from cs_core.records.layers import LayerStore
from cs_core.records.rawfile import Proofs
from cs_core.selection import select_driver
from cs_core.store.intents import LayerIntents
from cs_core.userns.idmap import is_contiguous


def check_roots(options: StoreOptions) -> None:
    if not options.graph_root and not options.run_root:
        raise IncompleteOptions("no storage runroot or graphroot specified")  # Go's words
    if not options.graph_root or not options.run_root:
        given, missing = (("graph_root", "run_root") if options.graph_root
                          else ("run_root", "graph_root"))
        raise IncompleteOptions(f"{given} given without {missing}: pass both (storage.conf's "
                                "would be shared with the system's store)")


class StoreContext:
    """Roots, record stores, locks and the driver of one open store."""

    def __init__(self, options: StoreOptions, registry: PluginRegistry) -> None:
        check_roots(options)
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
        self._load_driver_plugin(options.driver_name)
        with self.graph_lock.write_locked():
            self._graph_token = self.graph_lock.read_token()
            self.driver = self.make_driver(options.driver_name)
        self.driver_name = self.driver.name
        self.image_root = Path(options.image_store) if options.image_store else self.graph_root
        if options.image_store:
            rootdirs.make_root(options.image_store, "image store")
        self._open_record_stores()
        self.layer_intents = LayerIntents(self.graph_root / f"{self.driver_name}-layers")

    def _open_record_stores(self) -> None:
        name = self.driver_name
        self.layer_store = LayerStore(
            self.graph_root / f"{name}-layers", self.run_root / f"{name}-layers", self.driver,
            volatile_directory=self.run_root / f"{name}-layers" if self.transient else None,
            image_directory=self.image_root / f"{name}-layers" if self.options.image_store else None,
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
        if self.options.image_store:
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
        for layers in self.layer_stores():
            layers.proofs = proofs
        for images in self.image_stores():
            images.proofs = proofs

    # -- driver ------------------------------------------------------------------------------

    def _load_driver_plugin(self, name: str) -> None:
        """Import a named driver's plugin before the graph lock is taken: every process, Go's
        too, takes that lock at start-up, and an import under it delays each of them. A
        plugin that fails to load fails again, under the lock, with the usual error."""
        if name:
            with contextlib.suppress(StorageError):
                self.registry.driver_class(name)

    def make_driver(self, name: str) -> GraphDriver:
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
    def using_driver(self) -> Iterator[GraphDriver]:
        """Hold the graph lock; re-create the driver if another process shut it down."""
        with self.graph_lock.write_locked():
            token = self.graph_lock.read_token()
            if token != self._graph_token:
                self._graph_token = token
                self.driver = self.make_driver(self.driver_name)
                self.layer_store.driver = self.driver
            yield self.driver

    def note_driver_shut_down(self) -> None:
        """Tell other processes (caller holds the graph lock) to re-create their driver."""
        self._graph_token = self.graph_lock.record_write()

    def can_use_shifting(self, uid_map: Sequence[IDMap], gid_map: Sequence[IDMap]) -> bool:
        """Go ``canUseShifting``: the driver applies these maps at mount time.

        Layers are then kept with host IDs and never re-owned for a user namespace.
        """
        return (self.driver.supports_shifting(uid_map, gid_map)
                and is_contiguous(uid_map) and is_contiguous(gid_map))

    # -- locks -------------------------------------------------------------------------------

    @contextlib.contextmanager
    def read_all(self, layers: bool = True, images: bool = True,
                 containers: bool = True) -> Iterator[None]:
        with contextlib.ExitStack() as stack:
            if layers:
                for ls in self.layer_stores():
                    stack.enter_context(ls.reading())
            if images:
                for ist in self.image_stores():
                    stack.enter_context(ist.reading())
            if containers:
                stack.enter_context(self.container_store.reading())
            yield

    @contextlib.contextmanager
    def ro_layers_reading(self) -> Iterator[None]:
        with contextlib.ExitStack() as stack:
            for ls in self.ro_layer_stores:
                stack.enter_context(ls.reading())
            yield

    @contextlib.contextmanager
    def ro_images_reading(self) -> Iterator[None]:
        with contextlib.ExitStack() as stack:
            for ist in self.ro_image_stores:
                stack.enter_context(ist.reading())
            yield

    # -- finding records (callers hold the locks) --------------------------------------------

    def layer_stores(self) -> list[LayerStore]:
        return [self.layer_store, *self.ro_layer_stores]

    def image_stores(self) -> list[ImageStore]:
        return [self.image_store, *self.ro_image_stores]

    def find_layer(self, ref: str) -> tuple[Layer, LayerStore] | None:
        for ls in self.layer_stores():
            layer = ls.lookup(ref)
            if layer is not None:
                return layer, ls
        return None

    def find_image(self, ref: str) -> tuple[Image, ImageStore] | None:
        rw = self.image_store.lookup(ref)
        if rw is not None:
            return rw, self.image_store
        return self.find_ro_image(ref)

    def find_ro_image(self, ref: str) -> tuple[Image, ImageStore] | None:
        """An image of the other image stores, unless the writable store shadows it: a
        pulled-up copy stands for it, and names removed from the copy no longer resolve."""
        for ist in self.ro_image_stores:
            image = ist.lookup(ref)
            if image is not None and image.id not in self.image_store.by_id:
                return image, ist
        return None

    def image_top_layer(self, ls: LayerStore, ref: str) -> Layer | None:
        """The writable store's record of image ``ref``'s top layer (caller reads ``ls``)."""
        with self.read_all(layers=False, containers=False):
            found = self.find_image(ref)
        return ls.lookup(found[0].top_layer) if found is not None and found[0].top_layer else None

    def containers_dir(self, base: Path, *parts: str) -> Path:
        """``<base>/<driver>-containers/<parts...>`` (``base`` a graph or run root)."""
        return base.joinpath(f"{self.driver_name}-containers", *parts)
