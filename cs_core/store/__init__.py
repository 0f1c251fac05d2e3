"""The public library API: a store of layers, images and containers.

``open_store()`` returns a :class:`Store`. Every method takes the locks the Go library takes,
in Go's order (graph lock → layer stores → image stores → container store), reloads what
other processes changed, and leaves the store consistent if it fails half-way.

``Store`` is a flat façade mirroring Go's ``Store`` interface: each method hands over to the
module of its concern (``layers``, ``images``, ``containers``, ``mounts``, ``content``,
``generic``, ``maintenance``, ``check``/``repair``, ``staged``), which take the
:class:`~cs_core.store.context.StoreContext` the façade is built on and never the façade.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, BinaryIO

from cs_core.config import StoreOptions
from cs_core.drivers.plugins import PluginRegistry, default_registry
from cs_core.errors import StorageError
from cs_core.model import Change, Container, IDMap, Image, Layer
from cs_core.progress import Progress
from cs_core.store import (
    containers,
    content,
    generic,
    images,
    layers,
    maintenance,
    mounts,
)
from cs_core.store.context import StoreContext, check_roots
from cs_core.store.options import VERSION, ContainerOptions, ImageOptions, LayerOptions

if TYPE_CHECKING:
    from cs_core.archive.compression import Compression
    from cs_core.drivers.base import ApplyDiffOpts
    from cs_core.drivers.staging import Differ, StagedLayer
    from cs_core.store.check import CheckOptions, CheckReport, RepairOptions
    from cs_core.store.staged import ApplyStagedLayerOptions

__all__ = ["VERSION", "ContainerOptions", "ImageOptions", "LayerOptions", "Store", "open_store"]


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
            check_roots(options)
        else:
            options = StoreOptions.load_default()
    registry = registry or default_registry()
    store = Store(options, registry)
    registry.hooks.store_opened(store)
    return store


class Store(StoreContext):
    """Layers, images and containers on local disk, compatible with containers/storage."""

    def __init__(self, options: StoreOptions, registry: PluginRegistry) -> None:
        super().__init__(options, registry)
        layers.recover(self)

    # -- layers ------------------------------------------------------------------------------

    def create_layer(self, id: str | None = None, parent: str | None = None,
                     names: Sequence[str] = (), mount_label: str = "", writeable: bool = False,
                     options: LayerOptions | None = None) -> Layer:
        """Create an empty layer on ``parent``."""
        return layers.put_layer(self, id, parent, names, mount_label, writeable, options, None)

    def put_layer(self, id: str | None = None, parent: str | None = None,
                  names: Sequence[str] = (), mount_label: str = "", writeable: bool = False,
                  options: LayerOptions | None = None, diff: BinaryIO | None = None) -> Layer:
        """Create a layer, optionally filled from a (compressed) tar stream, atomically.

        ``options.progress`` gets running totals of the bytes read from ``diff``
        (:mod:`cs_core.progress`)."""
        from cs_core.store import layer_import  # the archive modules, when there is a stream

        return layer_import.put_layer(self, id, parent, names, mount_label, writeable, options,
                                      diff)

    def apply_diff(self, to: str, stream: BinaryIO, progress: Progress | None = None) -> int:
        """Apply a (possibly compressed) tar stream to an existing layer; returns its size.

        ``progress`` gets running totals of the bytes read from ``stream``
        (:mod:`cs_core.progress`)."""
        return layers.apply_diff(self, to, stream, progress)

    def prepare_staged_layer(self, differ: Differ,
                             options: ApplyDiffOpts | None = None) -> StagedLayer:
        """Let ``differ`` fill a locked staging directory (overlay only; Go
        ``PrepareStagedLayer``). Follow with ``apply_staged_layer`` or ``cleanup_staged_layer``."""
        from cs_core.store import staged

        return staged.prepare(self, differ, options)

    def apply_staged_layer(self, args: ApplyStagedLayerOptions) -> Layer:
        """Move staged content into layer ``args.id`` (created, all or nothing, if missing)."""
        from cs_core.store import staged

        return staged.apply(self, args)

    def cleanup_staged_layer(self, staged: StagedLayer) -> None:
        """Discard staged content that will not be applied."""
        from cs_core.store import staged as staging

        staging.cleanup(self, staged)

    def layer(self, ref: str) -> Layer:
        """The layer ``ref`` (ID, name or ID prefix) names, in any layer store."""
        return layers.layer(self, ref)

    def layers(self) -> list[Layer]:
        """Every layer, the writable store's first."""
        return layers.layers(self)

    def layer_size(self, ref: str) -> int:
        """The layer's uncompressed diff size, or -1 when unknown."""
        layer = self.layer(ref)
        return layer.uncompressed_size if layer.uncompressed_digest else -1

    def layers_by_compressed_digest(self, digest: str) -> list[Layer]:
        return layers.by_compressed_digest(self, digest)

    def layers_by_uncompressed_digest(self, digest: str) -> list[Layer]:
        return layers.by_uncompressed_digest(self, digest)

    def delete_layer(self, ref: str) -> None:
        """Delete a layer nobody uses (resolving names and prefixes before checking)."""
        layers.delete_layer(self, ref)

    def list_layer_big_data(self, ref: str) -> list[str]:
        return list(self.layer(ref).big_data_names)

    def layer_big_data(self, ref: str, key: str) -> bytes:
        return layers.big_data(self, ref, key)

    def set_layer_big_data(self, ref: str, key: str, data: bytes) -> None:
        layers.set_big_data(self, ref, key, data)

    # -- images ------------------------------------------------------------------------------

    def create_image(self, id: str | None = None, names: Sequence[str] = (), layer: str = "",
                     metadata: str = "", options: ImageOptions | None = None) -> Image:
        """Record an image whose top layer is ``layer``."""
        return images.create_image(self, id, names, layer, metadata, options)

    def image(self, ref: str) -> Image:
        return images.image(self, ref)

    def images(self) -> list[Image]:
        return images.images(self)

    def images_by_top_layer(self, ref: str) -> list[Image]:
        return images.by_top_layer(self, ref)

    def images_by_digest(self, digest: str) -> list[Image]:
        return images.by_digest(self, digest)

    def image_size(self, ref: str) -> int:
        """Bytes of the image's layers (mapped copies included) and big data."""
        return images.image_size(self, ref)

    def delete_image(self, ref: str, commit: bool = True) -> list[str]:
        """Delete an image and the layers only it uses; returns those layer IDs."""
        return images.delete_image(self, ref, commit)

    def set_image_big_data(self, ref: str, key: str, data: bytes,
                           digest_manifest: Callable[[bytes], str] | None = None) -> None:
        images.set_big_data(self, ref, key, data, digest_manifest)

    def list_image_big_data(self, ref: str) -> list[str]:
        return list(images.locate(self, ref).big_data_names)

    def image_big_data(self, ref: str, key: str) -> bytes:
        return images.big_data(self, ref, key)

    def image_big_data_size(self, ref: str, key: str) -> int:
        return images.big_data_size(self, ref, key)

    def image_big_data_digest(self, ref: str, key: str) -> str:
        return images.big_data_digest(self, ref, key)

    def image_directory(self, ref: str) -> str:
        return images.directory(self, self.graph_root, ref)

    def image_run_directory(self, ref: str) -> str:
        return images.directory(self, self.run_root, ref)

    def add_mapped_top_layer(self, image: str, layer: str) -> None:
        """Record an ID-mapped copy of the image's top layer (Go ``addMappedTopLayer``)."""
        images.add_mapped_top_layer(self, image, layer)

    # -- containers --------------------------------------------------------------------------

    def create_container(self, id: str | None = None, names: Sequence[str] = (),
                         image: str = "", layer: str | None = None, metadata: str = "",
                         options: ContainerOptions | None = None) -> Container:
        """Create a container (and its read-write layer) from ``image``, or from nothing."""
        return containers.create_container(self, id, names, image, layer, metadata, options)

    def container(self, ref: str) -> Container:
        return containers.container(self, ref)

    def containers(self) -> list[Container]:
        return containers.containers(self)

    def container_by_layer(self, ref: str) -> Container:
        return containers.by_layer(self, ref)

    def container_size(self, ref: str) -> int:
        """Bytes of the container's layer diff, big data and userdata directories."""
        return containers.container_size(self, ref)

    def delete_container(self, ref: str) -> None:
        containers.delete_container(self, ref)

    def set_container_big_data(self, ref: str, key: str, data: bytes) -> None:
        containers.set_big_data(self, ref, key, data)

    def list_container_big_data(self, ref: str) -> list[str]:
        return list(self.container(ref).big_data_names)

    def container_big_data(self, ref: str, key: str) -> bytes:
        return containers.big_data(self, ref, key)

    def container_big_data_size(self, ref: str, key: str) -> int:
        return containers.big_data_size(self, ref, key)

    def container_big_data_digest(self, ref: str, key: str) -> str:
        return containers.big_data_digest(self, ref, key)

    def container_directory(self, ref: str) -> str:
        return containers.directory(self, self.graph_root, ref)

    def container_run_directory(self, ref: str) -> str:
        return containers.directory(self, self.run_root, ref)

    # -- whatever an ID names ----------------------------------------------------------------

    def exists(self, ref: str) -> bool:
        return generic.exists(self, ref)

    def lookup(self, ref: str) -> str:
        """The full ID of the layer, image or container ``ref`` names."""
        return generic.lookup(self, ref)

    def metadata(self, ref: str) -> str:
        return generic.metadata(self, ref)

    def set_metadata(self, ref: str, metadata: str) -> None:
        generic.set_metadata(self, ref, metadata)

    def names(self, ref: str) -> list[str]:
        return generic.names(self, ref)

    def set_names(self, ref: str, names: Sequence[str]) -> None:
        generic.update_names(self, ref, names, "set")

    def add_names(self, ref: str, names: Sequence[str]) -> None:
        generic.update_names(self, ref, names, "add")

    def remove_names(self, ref: str, names: Sequence[str]) -> None:
        generic.update_names(self, ref, names, "remove")

    def delete(self, ref: str) -> None:
        """Delete whatever ``ref`` names, without safety checks (Go ``Store.Delete``)."""
        generic.delete(self, ref)

    def wipe(self) -> None:
        """Delete every container, image and layer."""
        generic.wipe(self)

    # -- mounts ------------------------------------------------------------------------------

    def mount(self, ref: str, mount_label: str = "", options: Sequence[str] = ()) -> str:
        """Mount a container's or layer's tree (reference counted); returns the path."""
        return mounts.mount(self, ref, mount_label, options)

    def unmount(self, ref: str, force: bool = False) -> bool:
        """Drop one mount reference (all with ``force``); returns whether still mounted."""
        return mounts.unmount(self, ref, force)

    def mounted(self, ref: str) -> int:
        """Mount count of a container's layer, a layer, or an image's top layer."""
        return mounts.mounted(self, ref)

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
        """Mount an image's top layer read-only."""
        return mounts.mount_image(self, ref, options, mount_label)

    def unmount_image(self, ref: str, force: bool = False) -> bool:
        return mounts.unmount_image(self, ref, force)

    def layer_parent_owners(self, ref: str) -> tuple[list[int], list[int]]:
        """Host IDs owning the mount point's ancestors that the layer's maps cannot
        represent (Go ``LayerParentOwners``)."""
        return mounts.layer_parent_owners(self, ref)

    def container_parent_owners(self, ref: str) -> tuple[list[int], list[int]]:
        return self.layer_parent_owners(self.container(ref).layer)

    # -- content -----------------------------------------------------------------------------

    def changes(self, from_: str | None, to: str) -> list[Change]:
        """What ``to`` changes compared with ``from_`` (default: its parent)."""
        return content.changes(self, from_, to)

    def diff_size(self, from_: str | None, to: str) -> int:
        return content.diff_size(self, from_, to)

    def diff(self, from_: str | None, to: str, out: BinaryIO,
             compression: Compression | None = None,
             progress: Progress | None = None) -> None:
        """Write the layer's changes as a tar stream; bit-exact when tar-split allows.

        ``progress`` gets running totals of the bytes written to ``out`` (compressed, if
        ``compression`` says so; :mod:`cs_core.progress`). See also :meth:`diff_reader`."""
        content.diff(self, from_, to, out, compression, progress)

    def diff_reader(self, from_: str | None, to: str,
                    compression: Compression | None = None) -> BinaryIO:
        """:meth:`diff` as a readable file (``with store.diff_reader(id) as f:``), streamed
        by a thread; a failure is raised by the read that reaches the end. As with Go's
        ``Diff``, the layer store stays locked until the file is read to its end or closed:
        finish with it before calling this store again (other calls wait for it, so calling
        from the reading thread would wait forever). See also :meth:`iter_diff`."""
        from cs_core.store.handles import diff_reader

        return diff_reader(self, from_, to, compression)

    def iter_diff(self, from_: str | None, to: str, compression: Compression | None = None,
                  chunk_size: int = 1 << 20) -> Iterator[bytes]:
        """:meth:`diff` as chunks of bytes (``for chunk in store.iter_diff(id):``)."""
        from cs_core.store.handles import read_chunks

        return read_chunks(self.diff_reader(from_, to, compression), chunk_size)

    # -- driver-level layers and maintenance -------------------------------------------------

    def storage_layers(self) -> list[str]:
        """Layer IDs the driver holds data for, records or not."""
        return maintenance.storage_layers(self)

    def create_storage_layer(self, id: str | None = None, parent: str | None = None,
                             mount_label: str = "", writeable: bool = False,
                             uid_map: Sequence[IDMap] = (), gid_map: Sequence[IDMap] = ()) -> str:
        """Create a driver layer without a record (Go CLI ``create-storage-layer``)."""
        return maintenance.create_storage_layer(self, id, parent, mount_label, writeable,
                                                uid_map, gid_map)

    def status(self) -> list[tuple[str, str]]:
        return maintenance.status(self)

    def version(self) -> list[tuple[str, str]]:
        return [("Version", VERSION)]

    def shutdown(self, force: bool = False) -> list[str]:
        """Unmount everything (with ``force``) and release driver resources."""
        return maintenance.shutdown(self, force)

    def check(self, options: CheckOptions | None = None) -> CheckReport:
        """Report damaged layers, images and containers (Go ``Check``; see cs_core.store.check)."""
        from cs_core.store.check import check

        return check(self, options)

    def repair(self, report: CheckReport,
               options: RepairOptions | None = None) -> list[StorageError]:
        """Remove what ``report`` found damaged; returns what could not be removed."""
        from cs_core.store.repair import repair

        return repair(self, report, options)

    def garbage_collect(self) -> None:
        """Remove data no record refers to (directories of deleted items, orphan layers)."""
        maintenance.garbage_collect(self)

    def dedup(self, hash_method: str = "crc") -> int:
        """Share extents of identical files in layers that images use; return bytes shared."""
        return maintenance.dedup(self, hash_method)

    def close(self) -> None:
        """Release the driver's resources (overlay's private mount of its home) unless a
        layer is mounted, as Go's ``Shutdown(false)``; later calls raise ``StoreClosed``."""
        from cs_core.store.handles import close_store

        close_store(self)

    def free(self) -> None:
        """Go's ``Free()``: forget the handle, leaving the driver as it is (the CLI's end)."""

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
