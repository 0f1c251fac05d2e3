"""vfs: a layer is ``<graphroot>/vfs/dir/<id>``, a full copy of its parent plus its changes.

Slow to create and big on disk, but works on any filesystem and needs no mounts; Go's
layout exactly, so Go and cs_core share vfs stores.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from cs_core import (
    ApplyDiffOpts,
    ApplyResult,
    ConfigTable,
    CreateOpts,
    DriverConfig,
    GraphDriver,
    IDMap,
    MountOpts,
    StagedTree,
    TreeStager,
    WhiteoutFormat,
)
from cs_core.drivers.api import (
    STAGING_DIR,
    evolve,
    fsync_paths,
    makedirs,
    move_staged_tree,
    parse_bool,
    prune_staging_dirs,
    remove_staging_dir,
    remove_tree,
    stage_plain_tree,
    syncfs,
    to_host,
)
from cs_vfs.copy import copy_tree
from cs_vfs.errors import VfsConfigError, VfsError


def _go_os_error(exc: OSError) -> str:
    """``<path>: <reason>`` in Go's lower-case style, e.g. ``/x: no space left on device``."""
    reason = exc.strerror or str(exc)
    reason = reason[:1].lower() + reason[1:]
    op = getattr(exc, "go_op", "")
    where = f"{op} {exc.filename}" if op else f"{exc.filename}"
    return f"{where}: {reason}" if exc.filename else reason


DEFAULT_PERMS = 0o555


class VfsDriver(GraphDriver, TreeStager):
    name = "vfs"
    whiteout_format = WhiteoutFormat.DELETE
    priority = 300
    rootless = True

    @classmethod
    def config_options(cls, table: ConfigTable) -> list[str]:
        return table.emit("ignore_chown_errors")

    def __init__(self, config: DriverConfig) -> None:
        super().__init__(config)
        self.homes = [self.home]
        #: With a split image store, where read-only (image) layers are created, as Go HEAD.
        self.image_home = config.image_store / "vfs" if config.image_store else None
        self.ignore_chown_errors = False
        for option in config.options:
            self._parse_option(option)
        makedirs(self.home, 0o700)
        # Trees of imports that died before becoming layers (their locks are free).
        prune_staging_dirs(self.home / STAGING_DIR)

    def _parse_option(self, option: str) -> None:
        # Go matches whole lower-cased keys: a bare ``imagestore`` or another driver's
        # ``overlay.*`` option is refused, not ignored (storage.conf only passes our own).
        key, sep, value = option.partition("=")
        if not sep:
            raise VfsConfigError(f"unable to parse key/value option: {option}")
        key = key.strip().lower()
        if key in ("vfs.imagestore", ".imagestore"):
            self.homes += [Path(p) / "vfs" for p in value.split(",") if p]
        elif key == "vfs.mountopt":
            raise VfsConfigError("vfs driver does not support mount options")
        elif key in (".ignore_chown_errors", "vfs.ignore_chown_errors"):
            self.ignore_chown_errors = parse_bool(value)
        else:
            raise VfsConfigError(f"vfs driver does not support {key} options")

    # -- layout ------------------------------------------------------------------------------

    def layer_dir(self, id: str) -> Path:
        name = os.path.basename(id)
        for home in [*self.homes, *self._image_homes()]:
            candidate = home / "dir" / name
            if candidate.is_dir():
                return candidate
        return self.home / "dir" / name

    def _image_homes(self) -> list[Path]:
        return [self.image_home] if self.image_home else []

    # -- lifecycle ---------------------------------------------------------------------------

    def create(self, id: str, parent: str | None, opts: CreateOpts) -> None:
        self._create(id, parent, opts, read_only=True)

    def create_read_write(self, id: str, parent: str | None, opts: CreateOpts) -> None:
        self._create(id, parent, opts)

    def create_from_template(
        self, id: str, template: str, template_maps: tuple[Sequence[IDMap], Sequence[IDMap]],
        parent: str | None, parent_maps: tuple[Sequence[IDMap], Sequence[IDMap]],
        opts: CreateOpts, read_write: bool,
    ) -> None:
        # As Go: a vfs layer is a whole tree, so a copy of the template is a layer with its
        # contents (reflinked where the filesystem can), owned as the template's are.
        self._create(id, template, opts, read_only=not read_write)
        try:
            self.reown_copy(id, template_maps, opts)
        except BaseException:
            self.remove(id)
            raise

    def _create(self, id: str, parent: str | None, opts: CreateOpts, *,
                read_only: bool = False) -> None:
        if opts.storage_opt:
            raise VfsError("--storage-opt is not supported for vfs")
        home = self.image_home if read_only and self.image_home else self.home
        target = home / "dir" / os.path.basename(id)
        makedirs(target.parent)
        if os.path.lexists(target):
            # Checked first: the cleanup below must never delete an existing layer.
            raise VfsError(f"mkdir {target}: file exists")
        try:
            if parent:
                self._copy_parent(parent, target)
            else:
                os.mkdir(target, DEFAULT_PERMS)
                os.chmod(target, DEFAULT_PERMS)  # not subject to the umask, as Go's chmod
                self._chown_root(target, opts)
        except BaseException as exc:
            remove_tree(target)
            if isinstance(exc, OSError):
                raise VfsError(_go_os_error(exc)) from exc
            raise

    def flush_created(self, id: str, parent: str | None) -> bool:
        target = self.layer_dir(id)
        made = _small_tree(target, _FSYNC_AT_MOST) if parent else [target]
        if made is None:
            return False  # a big copy of the parent: one syncfs is cheaper than its fsyncs
        try:
            fsync_paths([*made, target.parent, target.parent.parent])
        except PermissionError:  # a file we may not open (rootless, mode 000): syncfs it is
            return False
        return True

    def _copy_parent(self, parent: str, target: Path) -> None:
        source = self.layer_dir(parent)
        if not source.is_dir():
            raise VfsError(f"{parent}: stat {source}: no such file or directory")
        copy_tree(source, target)

    def _root_owner(self, opts: CreateOpts) -> tuple[int, int]:
        return (to_host(0, opts.uid_map or self.config.uid_map),
                to_host(0, opts.gid_map or self.config.gid_map))

    def _chown_root(self, target: Path, opts: CreateOpts) -> None:
        try:
            os.chown(target, *self._root_owner(opts))
        except OSError as exc:
            # Typically an unprivileged user without --unshare: name the call, as Go.
            exc.go_op = "chown"  # type: ignore[attr-defined]
            raise

    # -- unlocked imports (cs_core.drivers.staging.TreeStager) -------------------------------

    def stage_tree(self, parent: str | None, opts: CreateOpts) -> StagedTree:
        if opts.storage_opt:
            raise VfsError("--storage-opt is not supported for vfs")
        try:
            return stage_plain_tree(
                self.home / STAGING_DIR, DEFAULT_PERMS, self._root_owner(opts),
                (lambda target: self._copy_parent(parent, target)) if parent else None)
        except OSError as exc:
            raise VfsError(_go_os_error(exc)) from exc

    def apply_staged_diff(self, staged: StagedTree, stream: BinaryIO,
                          opts: ApplyDiffOpts) -> ApplyResult:
        from cs_core.drivers.api import naive_apply_into

        return naive_apply_into(self, staged.content, stream, self._apply_opts(opts))

    def commit_staged_tree(self, id: str, parent: str | None, staged: StagedTree,
                           opts: CreateOpts, writeable: bool) -> None:
        # A read-only layer of a split store lives in the image store, as _create puts it.
        home = self.image_home if not writeable and self.image_home else self.home
        target = home / "dir" / os.path.basename(id)
        makedirs(target.parent)
        try:
            move_staged_tree(staged, target)
        except FileExistsError:
            raise VfsError(f"mkdir {target}: file exists") from None
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            # The image store is on another filesystem: copy, flush, then drop the staged tree.
            copy_tree(staged.content, target)
            syncfs(target)
            remove_staging_dir(staged.layer_dir, staged.lock)

    def update_layer_id_map(
        self, id: str, to_container: tuple[Sequence[IDMap], Sequence[IDMap]],
        host_maps: tuple[Sequence[IDMap], Sequence[IDMap]], mount_label: str = "",
    ) -> None:
        # The walk leaves the layer's root alone, and a vfs layer's root was copied with its
        # parent's owner: as Go HEAD, give it the new maps' root (a container on a host-owned
        # image in a read-only store would otherwise see its / owned by an unmapped ID).
        super().update_layer_id_map(id, to_container, host_maps, mount_label)
        os.chown(self.layer_dir(id), to_host(0, host_maps[0]), to_host(0, host_maps[1]))

    def remove(self, id: str) -> None:
        # Only from the homes we write: a layer of an additional store stays there.
        for home in [self.home, *self._image_homes()]:
            remove_tree(home / "dir" / os.path.basename(id))

    def get(self, id: str, opts: MountOpts) -> Path:
        if opts.options and tuple(opts.options) != ("ro",):
            raise VfsError("vfs driver does not support mount options")
        path = self.layer_dir(id)
        if not path.is_dir():
            raise VfsError(f"stat {path}: no such file or directory")
        return path

    def put(self, id: str) -> None:
        """Nothing is mounted for vfs."""

    def exists(self, id: str) -> bool:
        return self.layer_dir(id).exists()

    def list_layers(self) -> list[str]:
        try:
            return sorted(e.name for e in os.scandir(self.home / "dir") if e.is_dir())
        except FileNotFoundError:
            return []

    def additional_image_stores(self) -> list[Path]:
        return [home.parent for home in self.homes[1:]]

    # -- content -----------------------------------------------------------------------------

    def apply_diff(
        self, id: str, parent: str | None, stream: BinaryIO, opts: ApplyDiffOpts
    ) -> ApplyResult:
        from cs_core.drivers.api import naive_apply_diff  # the tar engine: only commands that write layers

        return naive_apply_diff(self, id, parent, stream, self._apply_opts(opts))

    def _apply_opts(self, opts: ApplyDiffOpts) -> ApplyDiffOpts:
        if self.ignore_chown_errors and not opts.ignore_chown_errors:
            return evolve(opts, ignore_chown_errors=True)
        return opts


#: A copied parent with more entries than this is flushed by the store's syncfs instead.
_FSYNC_AT_MOST = 256


def _small_tree(root: Path, limit: int) -> list[Path] | None:
    """The directories and regular files under ``root`` (itself included), or None if there
    are more than ``limit``. Symlinks and special files are left to their directory's fsync:
    opening a FIFO to fsync it would block."""
    found = [root]
    pending = [root]
    while pending:
        with os.scandir(pending.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    pending.append(Path(entry.path))
                elif not entry.is_file(follow_symlinks=False):
                    continue
                found.append(Path(entry.path))
                if len(found) > limit:
                    return None
    return found
