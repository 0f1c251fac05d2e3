"""The graph-driver contract: what every driver package implements.

A driver stores layer *contents*; the core owns all bookkeeping (records, names, mount counts,
tar-split, digests). A driver subclasses :class:`GraphDriver`, implements the abstract methods,
and registers the class through the ``cs_register_graph_drivers`` hook.

Drivers that cannot diff natively inherit the naive implementations (``cs_core.drivers.naive``),
which mount the layer and its parent and compare the trees. Drivers import these names from
``cs_core`` and their helpers from ``cs_core.drivers.api``, nothing else of the core
(tests/test_plugin_face.py); docs/driver-guide.md walks through writing one.
"""

from __future__ import annotations

import abc
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import BinaryIO, ClassVar

from cs_core import recordclass
from cs_core.archive.whiteouts import WhiteoutFormat
from cs_core.drivers.options import ApplyDiffOpts as ApplyDiffOpts
from cs_core.drivers.options import CreateOpts as CreateOpts
from cs_core.drivers.options import MountOpts as MountOpts
from cs_core.errors import ConfigError, UnsafeArchive
from cs_core.model import NO_MAPS, ApplyResult, Change, IDMap, IDMapPair


@recordclass.frozen
class DriverConfig:
    """Everything a driver is constructed with.

    ``home`` is ``<graphroot>/<driver-name>`` and ``run_home`` ``<runroot>/<driver-name>``;
    ``options`` are the raw ``key=value`` strings from ``--storage-opt`` and storage.conf, with
    whatever prefix the user wrote (``overlay.mountopt=``, ``.mountopt=``): each driver parses
    its own keys and rejects unknown ones, as Go's drivers do.
    """

    home: Path
    run_home: Path
    graph_root: Path
    run_root: Path
    options: tuple[str, ...] = ()
    image_store: Path | None = None
    uid_map: tuple[IDMap, ...] = ()
    gid_map: tuple[IDMap, ...] = ()


@recordclass.frozen
class ConfigTable:
    """A driver's ``[storage.options.<driver>]`` table, for ``GraphDriver.config_options``.

    ``options`` is the enclosing ``[storage.options]``, some of whose keys Go takes when the
    driver's table lacks them; ``path`` names the file in errors.
    """

    driver: str
    table: Mapping[str, object]
    options: Mapping[str, object]
    path: str

    def value(self, key: str, *, fallback: bool = True) -> str:
        """The string at ``key`` (then ``[storage.options]``'s if ``fallback``), or ""."""
        for source in (self.table, self.options) if fallback else (self.table,):
            value = source.get(key, "")
            if not isinstance(value, str):
                raise ConfigError(
                    f"{self.path}: key {key!r} must be a string, not {type(value).__name__}")
            if value:
                return value
        return ""

    def emit(self, *keys: str, fallback: bool = True) -> list[str]:
        """``<driver>.<key>=<value>`` for each of ``keys`` that has a value."""
        return [f"{self.driver}.{key}={value}" for key in keys
                if (value := self.value(key, fallback=fallback))]


class FileGetter(abc.ABC):
    """Opens files of a layer by their path inside it (for tar-split replay)."""

    @abc.abstractmethod
    def open(self, path: str) -> BinaryIO:
        """Open ``path`` (relative, as named in the tar) for reading."""

    def close(self) -> None:
        """Release whatever the getter holds (e.g. a read-only mount)."""


class GraphDriver(abc.ABC):
    """Base class of every graph driver.

    Class attributes a driver sets:

    ``name``
        The driver name (``vfs``, ``overlay``, ...): the ``-s`` value and the directory under
        the graph root.
    ``aliases``
        Other names accepted for it (Go's ``overlay2`` for ``overlay``).
    ``whiteout_format``
        How applied tar streams record deletions on disk: ``WhiteoutFormat.DELETE`` (remove
        the path; vfs, btrfs) or ``WhiteoutFormat.OVERLAY`` (char device 0/0, opaque xattr).
    ``priority``
        Position in automatic selection, lower first (overlay 10, btrfs 20, vfs 300, Go's
        order). The default puts a driver that says nothing after those, as Go tries its
        priority list before any other registered driver.
    ``auto_select``
        Whether automatic selection may pick the driver at all; False leaves it to ``-s``,
        storage.conf's ``driver`` or ``driver_priority``, or a home already on disk.
    ``rootless``
        Whether an unprivileged user inherits the driver from the system storage.conf (Go
        ``isRootlessDriver``), with the options named in ``rootless_options``.
    """

    name: ClassVar[str]
    aliases: ClassVar[tuple[str, ...]] = ()
    whiteout_format: ClassVar[WhiteoutFormat] = WhiteoutFormat.DELETE
    priority: ClassVar[int] = 500
    auto_select: ClassVar[bool] = True
    rootless: ClassVar[bool] = False
    rootless_options: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: DriverConfig) -> None:
        self.config = config
        self.home = config.home
        self.run_home = config.run_home

    # -- selection ---------------------------------------------------------------------------

    @classmethod
    def probe(cls, config: DriverConfig) -> None:
        """Raise ``cs_core.errors.NotSupported`` if this driver cannot work for ``config``.

        Called before construction during automatic driver selection and again at
        construction; must not change anything on disk.
        """

    @classmethod
    def config_options(cls, table: ConfigTable) -> list[str]:
        """Option strings from storage.conf's ``[storage.options.<name>]`` table, as Go's
        ``GetGraphDriverOptions`` builds them for this driver. Default: none."""
        return []

    @classmethod
    def own_option(cls, option: str) -> tuple[str, str] | None:
        """``split_option`` for this driver's name and aliases."""
        return split_option(option, cls.name, cls.aliases)

    # -- lifecycle ---------------------------------------------------------------------------

    @abc.abstractmethod
    def create(self, id: str, parent: str | None, opts: CreateOpts) -> None:
        """Create an empty read-only (image) layer ``id`` on top of ``parent``."""

    def create_read_write(self, id: str, parent: str | None, opts: CreateOpts) -> None:
        """Create a writable (container) layer. Default: same as ``create``."""
        self.create(id, parent, opts)

    def flush_created(self, id: str, parent: str | None) -> bool:
        """Make durable what ``create``/``create_read_write`` just made for ``id`` by fsyncing
        those entries, and return True; or return False (the default), and the store flushes
        the whole filesystem (``syncfs``) before the record says the layer is whole.

        Worth doing when ``create`` makes only a few entries: ``syncfs`` also waits for every
        other process's dirty data, so beside a big import a create would wait for it.
        """
        return False

    @abc.abstractmethod
    def remove(self, id: str) -> None:
        """Delete layer ``id`` and everything the driver keeps for it. Missing is not an error."""

    @abc.abstractmethod
    def get(self, id: str, opts: MountOpts) -> Path:
        """Mount (or otherwise prepare) layer ``id`` and return the directory of its tree.

        The core counts mounts: ``get`` is called on the first mount only, ``put`` on the last
        unmount.
        """

    @abc.abstractmethod
    def put(self, id: str) -> None:
        """Undo ``get``: unmount layer ``id``."""

    @abc.abstractmethod
    def exists(self, id: str) -> bool:
        """Whether the driver has data for layer ``id``."""

    @abc.abstractmethod
    def list_layers(self) -> list[str]:
        """IDs of every layer the driver holds data for (used by ``gc`` and ``check``)."""

    def status(self) -> list[tuple[str, str]]:
        """Human-readable ``(key, value)`` pairs for ``containers-storage status``."""
        return []

    def metadata(self, id: str) -> dict[str, str]:
        """Driver facts about one layer (overlay: ``UpperDir``, ``LowerDir``, ...)."""
        return {}

    def cleanup(self) -> None:
        """Release resources at store shutdown (e.g. private bind mounts)."""

    def mount_path(self, id: str) -> Path:
        """Where ``get`` puts layer ``id``'s tree, derived from the ID alone.

        The core reads mount points from here, never from ``mountpoints.json``, which lives
        in the run root: a forged record must not hand callers a path outside the store.
        Default: ``layer_dir`` (directory drivers, whose ``get`` mounts nothing).
        """
        return self.layer_dir(id)

    def is_mounted(self, id: str, path: str) -> bool:
        """Whether a previous ``get`` of layer ``id`` at ``path`` (its ``mount_path``) is
        still in effect.

        Used to validate mount counts found in ``mountpoints.json``. Drivers that really
        mount override this (checking the mount by ID, not by path strings: see
        ``cs_core.drivers.mountinfo``); for directory drivers a layer is always "mounted".
        """
        return os.path.isdir(path)

    def read_write_disk_usage(self, id: str) -> int:
        """Bytes used by the writable part of layer ``id``."""
        from cs_core.walk import disk_usage

        return disk_usage(self.layer_dir(id))

    def layer_dir(self, id: str) -> Path:
        """The directory holding the layer's own files (without mounting), if there is one."""
        raise NotImplementedError(f"{self.name} driver has no plain layer directory")

    def additional_image_stores(self) -> list[Path]:
        """Read-only image stores configured through ``<driver>.imagestore`` options."""
        return []

    # -- content -----------------------------------------------------------------------------

    def apply_diff(
        self, id: str, parent: str | None, stream: BinaryIO, opts: ApplyDiffOpts
    ) -> ApplyResult:
        """Apply an uncompressed tar stream to layer ``id``; consume the stream to its end."""
        from cs_core.drivers import naive

        return naive.apply_diff(self, id, parent, stream, opts)

    def diff(self, id: str, parent: str | None, uid_map: Sequence[IDMap] = (),
             gid_map: Sequence[IDMap] = (), parent_maps: IDMapPair | None = None) -> BinaryIO:
        """An uncompressed tar stream of what layer ``id`` changes relative to ``parent``.

        ``uid_map``/``gid_map`` are layer ``id``'s maps (the stream carries container IDs),
        ``parent_maps`` the parent's (default: the same).
        """
        from cs_core.drivers import naive

        return naive.diff(self, id, parent, uid_map, gid_map, parent_maps)

    def changes(self, id: str, parent: str | None, maps: IDMapPair = NO_MAPS,
                parent_maps: IDMapPair = NO_MAPS) -> list[Change]:
        """The paths layer ``id`` (owned for ``maps``) adds, modifies or deletes relative to
        ``parent`` (owned for ``parent_maps``)."""
        from cs_core.drivers import naive

        return naive.changes(self, id, parent, maps, parent_maps)

    def diff_size(self, id: str, parent: str | None, maps: IDMapPair = NO_MAPS,
                  parent_maps: IDMapPair = NO_MAPS) -> int:
        """Approximate size of ``diff(id, parent)``: the sizes of changed files."""
        from cs_core.drivers import naive

        return naive.diff_size(self, id, parent, maps, parent_maps)

    def diff_getter(self, id: str) -> FileGetter:
        """A file opener over layer ``id``'s full tree (for tar-split replay)."""
        return MountedFileGetter(self, id)

    def create_from_template(
        self, id: str, template: str, template_maps: tuple[Sequence[IDMap], Sequence[IDMap]],
        parent: str | None, parent_maps: tuple[Sequence[IDMap], Sequence[IDMap]],
        opts: CreateOpts, read_write: bool,
    ) -> None:
        """Create layer ``id`` on ``parent`` with the same contents as layer ``template``
        (whose parent is ``parent``), owned for ``opts.uid_map``/``opts.gid_map``.

        The new layer may depend on the template staying around. The default works for every
        driver (layered ones store only the changes, and deletions come across as
        whiteouts): a new layer on ``parent``, re-owned for the new maps, with the template's
        diff applied with them (see ``naive.create_from_template``). Drivers whose layers are
        whole trees override it with a copy or a snapshot of the template, then
        ``reown_copy``.
        """
        from cs_core.drivers import naive

        naive.create_from_template(self, id, template, template_maps, parent, parent_maps,
                                   opts, read_write)

    def reown_copy(self, id: str, from_maps: tuple[Sequence[IDMap], Sequence[IDMap]],
                   opts: CreateOpts) -> None:
        """Re-own a fresh copy whose files are owned for ``from_maps`` for the maps in ``opts``."""
        old = (tuple(from_maps[0]), tuple(from_maps[1]))
        if old != (tuple(opts.uid_map), tuple(opts.gid_map)):
            self.update_layer_id_map(id, old, (opts.uid_map, opts.gid_map), opts.mount_label)

    # -- ID mapping --------------------------------------------------------------------------

    def supports_shifting(self, uid_map: Sequence[IDMap], gid_map: Sequence[IDMap]) -> bool:
        """Whether ID maps can be applied at mount time instead of re-owning files."""
        return False

    def update_layer_id_map(
        self, id: str, to_container: tuple[Sequence[IDMap], Sequence[IDMap]],
        to_host: tuple[Sequence[IDMap], Sequence[IDMap]], mount_label: str = "",
    ) -> None:
        """Re-own every file of a freshly created layer from one mapping to another."""
        from cs_core.drivers import naive

        naive.update_layer_id_map(self, id, to_container, to_host, mount_label)


class MountedFileGetter(FileGetter):
    """Opens files of layer ``id`` through a read-only mount, resolving names inside it."""

    def __init__(self, driver: GraphDriver, id: str) -> None:
        self._driver = driver
        self._id = id
        root = driver.get(id, MountOpts(options=("ro",)))
        self._fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)

    def open(self, path: str) -> BinaryIO:
        # Imported here: the tar engine is not needed to start the CLI.
        from cs_core.archive.apply import clean_member_name
        from cs_core.archive.saferoot import open_regular

        rel = clean_member_name(path)
        if not rel:
            raise UnsafeArchive(f"{path!r} is not a file")
        fd, _st = open_regular(self._fd, rel)
        return open(fd, "rb", buffering=0)  # type: ignore[return-value]

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
            self._driver.put(self._id)


def split_option(option: str, driver: str, aliases: Sequence[str] = ()) -> tuple[str, str] | None:
    """Split ``<prefix>.key=value`` into ``(key, value)`` if it is meant for ``driver``.

    Accepts ``<driver>.key`` (or an alias), ``.key`` and (for Go compatibility) bare ``key``;
    keys are lower-cased. Returns None for options addressed to another driver.
    """
    key, sep, value = option.partition("=")
    if not sep:
        raise ValueError(f"unable to parse key/value option: {option}")
    key = key.strip().lower()
    if "." in key:
        prefix, _, key = key.rpartition(".")
        if prefix and prefix != driver and prefix not in aliases:
            return None
    return key, value.strip()
