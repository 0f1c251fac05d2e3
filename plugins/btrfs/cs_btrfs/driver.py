"""The btrfs graph driver: one subvolume per layer, children are snapshots of their parent.

On-disk layout is Go's (``<home>/subvolumes/<id>``, ``<home>/quotas/<id>`` holding the layer's
size limit in decimal bytes), so Go and cs_core can share a store.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO, ClassVar

from cs_btrfs import fs, ioctl, native, subvol
from cs_btrfs.errors import BtrfsConfigError, BtrfsError, BtrfsNotSupported
from cs_btrfs.options import BtrfsOptions, human_size, parse_options, parse_storage_opt
from cs_core import (
    NO_MAPS,
    ApplyDiffOpts,
    ApplyResult,
    Change,
    ConfigTable,
    CreateOpts,
    DriverConfig,
    GraphDriver,
    IDMap,
    IDMapPair,
    MountOpts,
    StagedTree,
    TreeStager,
    WhiteoutFormat,
)
from cs_core.drivers.api import (
    CONTENT_DIR,
    STAGING_DIR,
    disk_usage,
    fsync_dir,
    getLogger,
    new_staging_dir,
    prune_staging_dirs,
    remove_staging_dir,
    remove_tree,
    write_in_place,
)

log = getLogger(__name__)  # logging itself is imported when something is logged

DEFAULT_PERMS = 0o555
#: What the Go 1.43 binary reports: the btrfs-progs headers it was built against (Debian 12).
BUILD_VERSION = "Btrfs v6.2"
LIBRARY_VERSION = 102


def _root_id(maps: Sequence[IDMap]) -> int:
    for m in maps:
        if m.container_id <= 0 < m.container_id + m.size:
            return m.host_id - m.container_id
    return 0


def _os_error(what: str, exc: OSError) -> BtrfsError:
    return BtrfsError(f"{what}: {exc.strerror or exc}")


class BtrfsDriver(GraphDriver, TreeStager):
    name: ClassVar[str] = "btrfs"
    whiteout_format: ClassVar[WhiteoutFormat] = WhiteoutFormat.DELETE
    priority: ClassVar[int] = 20
    rootless: ClassVar[bool] = True

    @classmethod
    def config_options(cls, table: ConfigTable) -> list[str]:
        # Go: a min_space setting is the only option then (its size is dropped).
        return table.emit("min_space", fallback=False) or table.emit("size")
    #: Use generation numbers for changes/diff when sound (see ``cs_btrfs.native``).
    native_changes: bool = True

    @classmethod
    def probe(cls, config: DriverConfig) -> None:
        try:
            magic = fs.fs_magic(config.home)
        except OSError as exc:
            raise BtrfsNotSupported(f"{config.home}: {exc.strerror}") from None
        if magic != fs.BTRFS_SUPER_MAGIC:
            raise BtrfsNotSupported(
                f'"{config.home}" is not on a btrfs filesystem: prerequisites for driver not satisfied '
                "(wrong filesystem?)")

    def __init__(self, config: DriverConfig) -> None:
        super().__init__(config)
        self.probe(config)
        self.options: BtrfsOptions = parse_options(config.options)
        self.root_uid = _root_id(config.uid_map)
        self.root_gid = _root_id(config.gid_map)
        self._mkdir(self.home)
        self._quota: bool | None = None
        # Trees of imports that died before becoming layers (their locks are free).
        prune_staging_dirs(self.home / STAGING_DIR, self._remove_staging_dir)
        if self.options.user_disk_quota:
            self._enable_quota()
        # Last, so that no failure above leaves the bind mount behind (Go's order leaks it).
        self._private = False
        try:
            fs.make_private(str(self.home))
            self._private = True
        except OSError as exc:
            # Without CAP_SYS_ADMIN (rootless, or a confined root) nothing can be mounted here,
            # so nothing can leak either; the btrfs driver itself never mounts.
            if exc.errno != errno.EPERM:
                raise _os_error(f"making {self.home} a private mount", exc) from None
            log.debug("%s not made a private mount: %s", self.home, exc)

    # -- paths -------------------------------------------------------------------------------

    @property
    def subvolumes(self) -> Path:
        return self.home / "subvolumes"

    @property
    def quotas(self) -> Path:
        return self.home / "quotas"

    def layer_dir(self, id: str) -> Path:
        # Every path the driver touches comes from here: an ID must name one entry of
        # subvolumes/, never climb out of it (remove would otherwise delete whatever it names).
        if not id or "/" in id or id in (".", "..") or "\0" in id:
            raise BtrfsError(f"invalid layer ID {id!r}")
        return self.subvolumes / id

    def _mkdir(self, path: Path) -> None:
        if not path.is_dir():
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
            if self.root_uid or self.root_gid:
                os.chown(path, self.root_uid, self.root_gid)

    # -- quotas ------------------------------------------------------------------------------

    def quota_enabled(self) -> bool:
        """Whether qgroups are on for the filesystem.

        Go checks once per process; we re-check while the answer is "no" (one tree search),
        because another process (a Go CLI with ``btrfs.min_space``) may turn quotas on, and a
        removal that misses that cannot lift a full layer's limit first.
        """
        if not self._quota:
            with ioctl.open_dir(self.home) as fd:
                self._quota = ioctl.quota_enabled(fd)
        return self._quota

    def _enable_quota(self) -> None:
        if self.quota_enabled():
            return
        try:
            with ioctl.open_dir(self.home) as fd:
                ioctl.quota_enable(fd)
        except OSError as exc:
            raise BtrfsError(f"failed to enable btrfs quota for {self.home}: {exc.strerror}") from None
        self._quota = True

    def _limit(self, path: Path, size: int) -> None:
        try:
            with ioctl.open_dir(path) as fd:
                ioctl.qgroup_limit(fd, size)
        except OSError as exc:
            raise BtrfsError(f"failed to limit qgroup for {path}: {exc.strerror}") from None

    def _check_size(self, size: int) -> None:
        if size <= 0:
            raise BtrfsConfigError(f"btrfs: invalid storage size: {human_size(size)}")
        if self.options.min_space > 0 and size < self.options.min_space:
            raise BtrfsConfigError(
                f"btrfs: storage size cannot be less than {human_size(self.options.min_space)}")

    # -- lifecycle ---------------------------------------------------------------------------

    def create(self, id: str, parent: str | None, opts: CreateOpts) -> None:
        self._create(id, parent, opts, default_size=0)

    def create_read_write(self, id: str, parent: str | None, opts: CreateOpts) -> None:
        self._create(id, parent, opts, default_size=self.options.size)

    def create_from_template(
        self, id: str, template: str, template_maps: tuple[Sequence[IDMap], Sequence[IDMap]],
        parent: str | None, parent_maps: tuple[Sequence[IDMap], Sequence[IDMap]],
        opts: CreateOpts, read_write: bool,
    ) -> None:
        # As Go: a snapshot of the template's subvolume (shared extents, no file copied), and
        # with ``create``'s sizing even for a read-write copy (Go calls Create either way).
        self._create(id, template, opts, default_size=0)
        try:
            self.reown_copy(id, template_maps, opts)
        except BaseException:
            self.remove(id)
            raise

    def _create(self, id: str, parent: str | None, opts: CreateOpts, default_size: int) -> None:
        # Validate before anything exists on disk, so a bad size leaves nothing behind.
        size = parse_storage_opt(opts.storage_opt) if "size" in opts.storage_opt else default_size
        if size or "size" in opts.storage_opt:
            self._check_size(size)
        # As Go: only the driver's own maps own the subvolume root; per-layer maps are the
        # store's business (it re-owns the tree through update_layer_id_map).
        uid, gid = self.root_uid, self.root_gid
        self._mkdir(self.subvolumes)
        target = self.layer_dir(id)
        try:
            if not parent:
                ioctl.subvol_create(self.subvolumes, id)
                os.chmod(target, DEFAULT_PERMS)
            else:
                source = self.layer_dir(parent)
                if not source.is_dir():
                    raise BtrfsError(f"stat {source}: no such file or directory")
                ioctl.snapshot(source, self.subvolumes, id)
        except OSError as exc:
            what = "create btrfs subvolume" if not parent else "create btrfs snapshot"
            raise _os_error(f"failed to {what} {target}", exc) from None
        self._finish_create(id, size, uid, gid)

    def _finish_create(self, id: str, size: int, uid: int, gid: int) -> None:
        """Size limit and root owner of the new subvolume ``id`` (removed if they fail)."""
        target = self.layer_dir(id)
        try:
            if size:
                self._enable_quota()
                self._limit(target, size)
                self._mkdir(self.quotas)
                write_in_place(self.quotas / id, str(size).encode(), 0o644)
            if uid or gid:
                os.chown(target, uid, gid)
        except BaseException:
            with contextlib.suppress(Exception):
                self.remove(id)
            raise

    # -- unlocked imports (cs_core.drivers.staging.TreeStager) -------------------------------

    def stage_tree(self, parent: str | None, opts: CreateOpts) -> StagedTree:
        layer_dir, lock = new_staging_dir(self.home / STAGING_DIR, DEFAULT_PERMS)
        staged = StagedTree(layer_dir, layer_dir / CONTENT_DIR, lock)
        try:
            os.rmdir(staged.content)  # a subvolume (or snapshot) takes its place
            if not parent:
                ioctl.subvol_create(layer_dir, CONTENT_DIR)
                os.chmod(staged.content, DEFAULT_PERMS)
            else:
                source = self.layer_dir(parent)
                if not source.is_dir():
                    raise BtrfsError(f"stat {source}: no such file or directory")
                ioctl.snapshot(source, layer_dir, CONTENT_DIR)
        except OSError as exc:
            self.discard_staged_tree(staged)
            what = "create btrfs subvolume" if not parent else "create btrfs snapshot"
            raise _os_error(f"failed to {what} {staged.content}", exc) from None
        except BaseException:
            self.discard_staged_tree(staged)
            raise
        return staged

    def apply_staged_diff(self, staged: StagedTree, stream: BinaryIO,
                          opts: ApplyDiffOpts) -> ApplyResult:
        return self._apply_into(staged.content, stream, opts)

    def commit_staged_tree(self, id: str, parent: str | None, staged: StagedTree,
                           opts: CreateOpts, writeable: bool) -> None:
        size = self.options.size if writeable else 0
        if size:
            self._check_size(size)
        self._mkdir(self.subvolumes)
        target = self.layer_dir(id)
        if os.path.lexists(target):
            raise BtrfsError(f"failed to create btrfs subvolume {target}: file exists")
        os.rename(staged.content, target)
        fsync_dir(self.subvolumes)  # before the record naming the layer
        remove_staging_dir(staged.layer_dir, staged.lock)
        self._finish_create(id, size, self.root_uid, self.root_gid)

    def discard_staged_tree(self, staged: StagedTree) -> None:
        self._delete_staged_subvolume(staged.layer_dir)
        super().discard_staged_tree(staged)

    def _delete_staged_subvolume(self, layer_dir: Path) -> None:
        with contextlib.suppress(OSError):
            if ioctl.is_subvolume(layer_dir / CONTENT_DIR):
                subvol.delete(str(layer_dir), CONTENT_DIR, quota=self.quota_enabled())

    def _remove_staging_dir(self, layer_dir: Path) -> None:
        self._delete_staged_subvolume(layer_dir)
        remove_tree(layer_dir)

    def remove(self, id: str) -> None:
        target = self.layer_dir(id)  # validates the ID before anything is unlinked
        if not os.path.lexists(target):
            with contextlib.suppress(FileNotFoundError):
                (self.quotas / id).unlink()
            return
        with contextlib.suppress(FileNotFoundError):
            (self.quotas / id).unlink()
        quota = self.quota_enabled()
        try:
            if ioctl.is_subvolume(target):
                subvol.delete(str(self.subvolumes), id, quota=quota)
        except OSError as exc:
            # As Go: without quotas a failed destroy falls back to unlinking (an unprivileged
            # user may rmdir an empty subvolume it owns on kernels >= 4.18).
            if quota:
                raise _os_error(f"failed to destroy btrfs snapshot {self.subvolumes} for {id}", exc) from None
            log.debug("btrfs destroy of %s failed, removing files: %s", target, exc)
        remove_tree(target)

    def get(self, id: str, opts: MountOpts) -> Path:
        target = self.layer_dir(id)
        if not os.path.exists(target):
            raise BtrfsError(f"stat {target}: no such file or directory")
        if len(opts.options) > 1 or (opts.options and opts.options[0] != "ro"):
            raise BtrfsConfigError("btrfs driver does not support mount options")
        if not target.is_dir():
            raise BtrfsError(f"{target}: not a directory")
        try:
            size = int((self.quotas / id).read_bytes())
        except (OSError, ValueError):
            size = -1
        # Go re-applies the stored limit on every mount (e.g. after quotas were toggled off).
        if size >= 0 and size >= self.options.min_space:
            self._enable_quota()
            self._limit(target, size)
        return target

    def put(self, id: str) -> None:
        """Nothing to undo: ``get`` mounts nothing."""

    def exists(self, id: str) -> bool:
        try:
            return os.path.exists(self.layer_dir(id))
        except BtrfsError:
            return False

    def list_layers(self) -> list[str]:
        try:
            return sorted(e.name for e in os.scandir(self.subvolumes) if e.is_dir(follow_symlinks=False))
        except FileNotFoundError:
            return []

    def status(self) -> list[tuple[str, str]]:
        return [("Build Version", BUILD_VERSION), ("Library Version", str(LIBRARY_VERSION))]

    def cleanup(self) -> None:
        if self._private and fs.is_mountpoint(str(self.home)):
            with contextlib.suppress(OSError):
                fs.unmount(str(self.home))
        self._private = False

    def is_mounted(self, id: str, path: str) -> bool:
        return os.path.isdir(path)

    def read_write_disk_usage(self, id: str) -> int:
        return disk_usage(self.layer_dir(id))

    # -- content -----------------------------------------------------------------------------

    def apply_diff(self, id: str, parent: str | None, stream: BinaryIO, opts: ApplyDiffOpts) -> ApplyResult:
        # The subvolume is the layer's whole tree, already holding the parent's files: applying
        # in place is what Go's naive driver does through Get, and so are its error reports.
        return self._apply_into(self.get(id, MountOpts()), stream, opts)

    def _apply_into(self, root: Path, stream: BinaryIO, opts: ApplyDiffOpts) -> ApplyResult:
        from cs_core.drivers.api import ApplyOptions, apply_logged

        options = ApplyOptions(
            whiteout_format=WhiteoutFormat.DELETE, uid_map=tuple(opts.uid_map), gid_map=tuple(opts.gid_map),
            ignore_chown_errors=opts.ignore_chown_errors, force_mask=opts.force_mask,
            progress=opts.progress)
        return apply_logged(root, stream, options, opts.tar_split)

    def _native_since(self, id: str, parent: str | None, maps: IDMapPair = NO_MAPS,
                      parent_maps: IDMapPair = NO_MAPS) -> tuple[int, int] | None:
        if not parent or not self.native_changes:
            return None
        if _as_tuples(maps) != _as_tuples(parent_maps):
            # Re-owned for other maps: every inode is newer than the snapshot, and owners
            # must be compared through each side's maps, which the naive walk does.
            return None
        try:
            with ioctl.open_dir(self.layer_dir(id)) as cfd, ioctl.open_dir(self.layer_dir(parent)) as pfd:
                return native.usable(cfd, pfd)
        except OSError:
            return None

    def _native_changes(self, id: str, parent: str, since: tuple[int, int]) -> list[Change]:
        with ioctl.open_dir(self.layer_dir(id)) as fd:
            return native.changes(self.layer_dir(id), self.layer_dir(parent), fd, since)

    def changes(self, id: str, parent: str | None, maps: IDMapPair = NO_MAPS,
                parent_maps: IDMapPair = NO_MAPS) -> list[Change]:
        since = self._native_since(id, parent, maps, parent_maps)
        if since is None:
            return super().changes(id, parent, maps, parent_maps)
        assert parent is not None
        return self._native_changes(id, parent, since)

    def diff_size(self, id: str, parent: str | None, maps: IDMapPair = NO_MAPS,
                  parent_maps: IDMapPair = NO_MAPS) -> int:
        since = self._native_since(id, parent, maps, parent_maps)
        if since is None:
            return super().diff_size(id, parent, maps, parent_maps)
        from cs_core.drivers.api import changes_size

        assert parent is not None
        return changes_size(self.layer_dir(id), self._native_changes(id, parent, since))

    def diff(self, id: str, parent: str | None, uid_map: Sequence[IDMap] = (),
             gid_map: Sequence[IDMap] = (), parent_maps: IDMapPair | None = None) -> BinaryIO:
        maps = (uid_map, gid_map)
        since = self._native_since(id, parent, maps, maps if parent_maps is None else parent_maps)
        if since is None:
            return super().diff(id, parent, uid_map, gid_map, parent_maps)
        from cs_core.drivers.api import export_changes

        assert parent is not None
        found = self._native_changes(id, parent, since)
        root = self.layer_dir(id)

        def produce(out: BinaryIO) -> None:
            export_changes(root, found, out, uid_map, gid_map)

        from cs_core.drivers.api import PipeStream

        return PipeStream(produce)  # type: ignore[return-value]


def _as_tuples(maps: IDMapPair) -> tuple[tuple[IDMap, ...], tuple[IDMap, ...]]:
    return tuple(maps[0]), tuple(maps[1])
