"""vfs: a layer is ``<graphroot>/vfs/dir/<id>``, a full copy of its parent plus its changes.

Slow to create and big on disk, but works on any filesystem and needs no mounts; Go's
layout exactly, so Go and cs_core share vfs stores.
"""

from __future__ import annotations

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
    WhiteoutFormat,
)
from cs_core.drivers.api import makedirs, parse_bool, remove_tree, to_host
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


class VfsDriver(GraphDriver):
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
        self.ignore_chown_errors = False
        for option in config.options:
            self._parse_option(option)
        makedirs(self.home, 0o700)

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
        for home in self.homes:
            candidate = home / "dir" / name
            if candidate.is_dir():
                return candidate
        return self.home / "dir" / name

    # -- lifecycle ---------------------------------------------------------------------------

    def create(self, id: str, parent: str | None, opts: CreateOpts) -> None:
        self._create(id, parent, opts)

    def create_read_write(self, id: str, parent: str | None, opts: CreateOpts) -> None:
        self._create(id, parent, opts)

    def create_from_template(
        self, id: str, template: str, template_maps: tuple[Sequence[IDMap], Sequence[IDMap]],
        parent: str | None, parent_maps: tuple[Sequence[IDMap], Sequence[IDMap]],
        opts: CreateOpts, read_write: bool,
    ) -> None:
        # As Go: a vfs layer is a whole tree, so a copy of the template is a layer with its
        # contents (reflinked where the filesystem can), owned as the template's are.
        self._create(id, template, opts)
        try:
            self.reown_copy(id, template_maps, opts)
        except BaseException:
            self.remove(id)
            raise

    def _create(self, id: str, parent: str | None, opts: CreateOpts) -> None:
        if opts.storage_opt:
            raise VfsError("--storage-opt is not supported for vfs")
        target = self.home / "dir" / os.path.basename(id)
        makedirs(target.parent)
        uid_map = opts.uid_map or self.config.uid_map
        gid_map = opts.gid_map or self.config.gid_map
        if os.path.lexists(target):
            # Checked first: the cleanup below must never delete an existing layer.
            raise VfsError(f"mkdir {target}: file exists")
        try:
            if parent:
                source = self.layer_dir(parent)
                if not source.is_dir():
                    raise VfsError(f"{parent}: stat {source}: no such file or directory")
                copy_tree(source, target)
            else:
                os.mkdir(target, DEFAULT_PERMS)
                os.chmod(target, DEFAULT_PERMS)  # not subject to the umask, as Go's chmod
                try:
                    os.chown(target, to_host(0, uid_map), to_host(0, gid_map))
                except OSError as exc:
                    # Typically an unprivileged user without --unshare: name the call, as Go.
                    exc.go_op = "chown"  # type: ignore[attr-defined]
                    raise
        except BaseException as exc:
            remove_tree(target)
            if isinstance(exc, OSError):
                raise VfsError(_go_os_error(exc)) from exc
            raise

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
        remove_tree(self.home / "dir" / os.path.basename(id))

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

        if self.ignore_chown_errors and not opts.ignore_chown_errors:
            import attrs

            opts = attrs.evolve(opts, ignore_chown_errors=True)
        return naive_apply_diff(self, id, parent, stream, opts)
