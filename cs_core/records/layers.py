"""Layer records: ``<driver>-layers/layers.json``, mount counts, tar-split files.

Mount counts live apart, in ``<runroot>/<driver>-layers/mountpoints.json`` under their own
lock, because they change far more often than layers and must not survive a reboot.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from cs_core import atomic, codec, lazylog, lockfile
from cs_core.atomic import syncfs_each
from cs_core.drivers.base import CreateOpts, GraphDriver
from cs_core.errors import LayerUnknown, StorageError
from cs_core.model import Layer, MountRecord
from cs_core.records.base import RecordFile, RecordStore
from cs_core.records.multilock import LockGroup

log = lazylog.getLogger(__name__)

INCOMPLETE = "incomplete"
#: Set (durably) while applydiff fills an existing layer; see ``undo_interrupted_apply``.
APPLYING = "cs-applying-diff"
APPLYING_TO_EMPTY = "empty"  # its value when the layer held nothing before
#: How atomic writes (ours and Go's) name their temp files.
TEMP_PREFIX = ".tmp-"


class LayerStore(RecordStore[Layer]):
    kind = "layer"
    record_cls = Layer
    unknown_error = LayerUnknown

    def __init__(
        self, directory: Path, run_directory: Path | None, driver: GraphDriver, *,
        read_only: bool = False, volatile_directory: Path | None = None,
        image_directory: Path | None = None,
    ) -> None:
        # A read-only (additional) store is read through both of its files, as Go reads it:
        # the store that wrote it may have kept volatile layers there.
        files = [
            RecordFile(directory / "layers.json"),
            RecordFile((volatile_directory or directory) / "volatile-layers.json", volatile=True),
        ]
        own_lock = lockfile.get(directory / "layers.lock", read_only=read_only)
        lock: lockfile.LockFile | LockGroup = own_lock
        #: With a split image store, its ``<driver>-layers/``: read-only layers live there.
        self.image_directory = image_directory
        if image_directory is not None:
            files.append(RecordFile(image_directory / "layers.json"))
            lock = LockGroup([own_lock, lockfile.get(image_directory / "layers.lock")])
        super().__init__(directory, files, lock, read_only=read_only)
        self.driver = driver
        self.run_directory = run_directory
        self.mounts_lock = (
            lockfile.get(run_directory / "mountpoints.lock") if run_directory and not read_only else None
        )
        self._mounts_token: bytes | None = None
        self._mounts: dict[str, MountRecord] = {}  # mountpoints.json, for records decoded later
        self._undeletable: set[str] = set()  # incomplete layers whose cleanup failed here

    def path_ids(self, layer: Layer) -> list[str]:
        return [layer.id, *([layer.parent] if layer.parent else [])]

    def _mark_loaded(self, record: Layer, source: RecordFile) -> None:
        record.read_only = self.read_only
        record.volatile = source.volatile
        record.in_image_store = self.image_directory is not None and source is self.files[2]
        self._apply_mount(record)

    def _file_for(self, record: Layer) -> RecordFile:
        if record.volatile:
            return self.files[1]
        return self.files[2] if record.in_image_store else self.files[0]

    def pick_location(self, layer: Layer, *, volatile: bool, writeable: bool) -> None:
        """Choose the file a new layer's record goes to, as HEAD's pickStoreLocation.

        Only layers asked to be volatile go to the volatile file (in transient mode
        create_container asks for its layers); with a split image store, read-only (image)
        layers go to the image store's layers.json, so that store is usable on its own.
        """
        layer.volatile = volatile
        layer.in_image_store = not volatile and not writeable and self.image_directory is not None

    def records_directory(self, layer_id: str) -> Path:
        """Where a layer's tar-split and data directory live: beside its record, so a split
        image store holds all of its read-only layers and works as a graph root on its own."""
        layer = self.by_id.get(layer_id)
        if layer is not None and layer.in_image_store and self.image_directory is not None:
            return self.image_directory
        return self.directory

    def data_dir(self, record_id: str) -> Path:
        return self.records_directory(record_id) / record_id

    def after_load(self, *, writing: bool) -> None:
        if self.read_only:
            return
        self.load_mounts()
        if writing and (self.raw_contains(b'"%s":' % INCOMPLETE.encode())
                        or self.raw_contains(b'"%s":' % APPLYING.encode())):
            self._materialise()  # there is repair work to do: decode them all
        if writing and self._raw is None:
            doomed = [layer for layer in self.records if layer.incomplete]
            for layer in doomed:
                log.warning('Found incomplete layer "%s", deleting it', layer.id)
                if self._delete_incomplete(layer):
                    self.records.remove(layer)
            interrupted = [layer for layer in self.records if layer.flags.get(APPLYING)]
            for layer in interrupted:
                log.warning('Found layer "%s" with an interrupted applydiff, resetting it', layer.id)
                self.undo_interrupted_apply(layer)
            if doomed or interrupted:
                self.reindex()
                self.save()

    def _delete_incomplete(self, layer: Layer) -> bool:
        """Remove an incomplete layer's data; on failure warn and keep its record for a retry.

        Go fails the whole load here, so one undeletable file (immutable, a busy mount, EIO)
        makes every later command fail until someone cleans up by hand.
        """
        if layer.id in self._undeletable:
            return False  # tried once by this process: one error line is enough
        try:
            self.delete_data(layer)
        except Exception as exc:
            self._undeletable.add(layer.id)
            # Error level: the CLI shows only errors unless --debug (as Go's), and the user
            # should learn that a layer's files are stuck on disk.
            log.error('could not delete incomplete layer "%s" (retried on next use): %s',
                      layer.id, _one_line(exc))
            return False
        return True

    def undo_interrupted_apply(self, layer: Layer) -> None:
        """Put back a layer whose applydiff died half-way (caller saves).

        A layer that held nothing before (no digest, no tar-split) is re-created empty, which
        is exactly its state before the apply. One that already had content cannot be rolled
        back file by file; it is left for ``check`` (content modified) and ``check -r``.
        """
        # The flag says what the layer held before: the apply may have got as far as
        # replacing the tar-split file, so the files on disk cannot tell any more.
        if layer.flags.get(APPLYING) == APPLYING_TO_EMPTY:
            with contextlib.suppress(FileNotFoundError):
                self.tar_split_path(layer.id).unlink()
            self.driver.remove(layer.id)
            self.driver.create(layer.id, layer.parent or None, CreateOpts(
                mount_label=layer.mount_label, uid_map=tuple(layer.uid_map),
                gid_map=tuple(layer.gid_map)))
            parent = self.by_id.get(layer.parent)
            parent_maps = (parent.uid_map, parent.gid_map) if parent else ([], [])
            maps = (layer.uid_map, layer.gid_map)
            if parent_maps != maps and (layer.uid_map or layer.gid_map or parent):
                self.driver.update_layer_id_map(layer.id, parent_maps, maps, layer.mount_label)
        layer.flags.pop(APPLYING, None)
        _remove_temporaries(self.data_dir(layer.id))  # e.g. the killed apply's tar-split

    # -- tar-split and data ------------------------------------------------------------------

    def tar_split_path(self, layer_id: str) -> Path:
        return self.records_directory(layer_id) / f"{layer_id}.tar-split.gz"

    @contextlib.contextmanager
    def tar_split_writer(self, layer_id: str, *, durable: bool = True,
                         ) -> Iterator[BinaryIO]:
        """Write the layer's tar-split file atomically, staged inside the layer's data directory.

        A killed import leaves its temp file there, and whoever removes the (incomplete) layer
        removes that directory with it (Go too); one beside layers.json would stay forever.
        ``durable=False`` when ``sync_content`` follows before the record names the file.
        """
        data_dir = self.data_dir(layer_id)
        created = not data_dir.exists()
        data_dir.mkdir(mode=0o700, exist_ok=True)
        try:
            with atomic.atomic_writer(self.tar_split_path(layer_id), 0o600,
                                      tmp_dir=data_dir, durable=durable) as out:
                yield out
        finally:
            if created:  # keep Go's layout: no data directory for a layer without big data
                with contextlib.suppress(OSError):
                    data_dir.rmdir()

    def sync_content(self) -> None:
        """Flush a layer's files (the driver's, and its tar-split beside the records) before the
        record that says the layer is whole: one ``syncfs`` per filesystem, not an fsync per
        file (fsyncs are taken under the layer lock, so each one delays every other writer)."""
        syncfs_each([self.driver.home, self.directory])

    def remove_stale_temporaries(self) -> None:
        """Delete temp files killed writers left beside the records (caller holds the write
        lock, as every writer of them does, Go's included)."""
        _remove_temporaries(self.directory)
        if self.image_directory is not None:
            _remove_temporaries(self.image_directory)

    def delete_data(self, layer: Layer) -> None:
        """Remove everything the store and the driver keep for a layer (record aside)."""
        with contextlib.suppress(FileNotFoundError):
            self.tar_split_path(layer.id).unlink()
        self.remove_data_dir(layer.id)
        self.driver.remove(layer.id)

    # -- mount counts ------------------------------------------------------------------------

    @property
    def mounts_path(self) -> Path:
        assert self.run_directory is not None
        return self.run_directory / "mountpoints.json"

    def load_mounts(self) -> None:
        if self.run_directory is None:
            return
        self._mounts = {}
        try:
            data = self.mounts_path.read_bytes()
        except FileNotFoundError:
            data = b""
        for mount in codec.loads_records(data, MountRecord, str(self.mounts_path)):
            if mount.path:
                self._mounts[mount.id] = mount
        for layer in self.loaded_records():
            self._apply_mount(layer)

    def _apply_mount(self, layer: Layer) -> None:
        mount = self._mounts.get(layer.id)
        if mount is None:
            layer.mount_point, layer.mount_count = "", 0
            return
        # The count is taken from the file, the path never: the run root is not the graph
        # root, and a forged path would be handed to callers (and walked by check). Go
        # writes the same derived path for the same roots.
        layer.mount_point = self._mount_path(layer.id)
        layer.mount_count = mount.count if layer.mount_point else 0

    def _mount_path(self, layer_id: str) -> str:
        try:
            return os.path.normpath(self.driver.mount_path(layer_id))
        except (NotImplementedError, OSError, StorageError) as exc:
            log.debug("ignoring the recorded mount of layer %s: %s", layer_id, exc)
            return ""

    @contextlib.contextmanager
    def mounts_writing(self) -> Iterator[None]:
        """Hold the mountpoints lock for writing, with fresh counts; save on success."""
        assert self.mounts_lock is not None
        with self.mounts_lock.write_locked():
            token = self.mounts_lock.read_token()
            if token != self._mounts_token:
                self.load_mounts()
            yield
            self._mounts_token = self.mounts_lock.record_write()
            records = [
                MountRecord(layer.id, layer.mount_point, layer.mount_count)
                for layer in self.records
                if layer.mount_point and layer.mount_count > 0
            ]
            # Mount state is per boot: no need to fsync it (it lives on tmpfs anyway).
            atomic.write_file(self.mounts_path, codec.dumps_records(records), 0o600, durable=False)

    def refresh_mounts(self) -> None:
        if self.mounts_lock is None:
            return
        with self.mounts_lock.read_locked():
            token = self.mounts_lock.read_token()
            if token != self._mounts_token:
                self.load_mounts()
                self._mounts_token = token

    # -- digests -----------------------------------------------------------------------------

    def by_compressed_digest(self, digest: str) -> list[Layer]:
        return [layer for layer in self.mentioning(digest) if layer.compressed_digest == digest]

    def by_uncompressed_digest(self, digest: str) -> list[Layer]:
        return [layer for layer in self.mentioning(digest)
                if layer.uncompressed_digest == digest]

    def children(self, layer_id: str) -> list[Layer]:
        return [layer for layer in self.mentioning(layer_id) if layer.parent == layer_id]


def _remove_temporaries(directory: Path) -> None:
    """Delete the atomic-write temp files in ``directory`` (its writers hold our lock)."""
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return
    for entry in entries:
        if entry.name.startswith(TEMP_PREFIX) and entry.is_file(follow_symlinks=False):
            log.debug("removing stale temporary file %s", entry.path)
            with contextlib.suppress(OSError):
                os.unlink(entry.path)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
