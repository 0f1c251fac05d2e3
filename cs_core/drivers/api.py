"""Helpers graph drivers share: the one core module besides ``cs_core`` a driver imports.

The contract (``GraphDriver``, its option types, ``hookimpl``, the model and error types) is
exported from :mod:`cs_core` itself; this module holds the tools drivers build on: safe tree
walks and writes, the tar engine, the naive diff, ID maps, mount checks, staging directories.
Everything else in ``cs_core`` is private to the core and may change between versions
(tests/test_plugin_face.py fails if a plugin imports it). Names are imported on first use,
so a driver importing this pays only for what it touches.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cs_core.lazy import lazy_exports

if TYPE_CHECKING:
    from cs_core.archive.apply import ApplyOptions, apply_tar, clean_member_name
    from cs_core.archive.changes import compared_xattrs, export_changes, export_tree, overlay_changes
    from cs_core.archive.idmap import to_container, to_host
    from cs_core.archive.saferoot import open_regular
    from cs_core.atomic import WRITE_FLAGS, fsync_dir, fsync_paths, makedirs, syncfs, write_in_place
    from cs_core.drivers.fsmagic import fs_magic
    from cs_core.drivers.mountinfo import is_mountpoint, mount_of
    from cs_core.drivers.naive import PipeStream, apply_logged, changes_size
    from cs_core.drivers.naive import apply_diff as naive_apply_diff
    from cs_core.drivers.naive import apply_into as naive_apply_into
    from cs_core.drivers.optvalues import parse_bool, ram_in_bytes
    from cs_core.drivers.staging import (
        CONTENT_DIR,
        STAGING_DIR,
        StagingLock,
        move_staged_tree,
        new_staging_dir,
        prune_staging_dirs,
        remove_staging_dir,
        stage_plain_tree,
    )
    from cs_core.lazylog import getLogger
    from cs_core.recordclass import define, evolve, field, frozen
    from cs_core.userns.idmap import is_contiguous
    from cs_core.userns.rootless import is_rootless
    from cs_core.walk import Dir, disk_usage, open_beneath, remove_tree, walk

_EXPORTS = {
    "cs_core.archive.apply": ("ApplyOptions", "apply_tar", "clean_member_name"),
    "cs_core.archive.changes": ("compared_xattrs", "export_changes", "export_tree", "overlay_changes"),
    "cs_core.archive.idmap": ("to_container", "to_host"),
    "cs_core.archive.saferoot": ("open_regular",),
    "cs_core.atomic": ("WRITE_FLAGS", "fsync_dir", "fsync_paths", "makedirs", "syncfs",
                       "write_in_place"),
    "cs_core.drivers.fsmagic": ("fs_magic",),
    "cs_core.drivers.mountinfo": ("is_mountpoint", "mount_of"),
    "cs_core.drivers.naive": ("PipeStream", "apply_logged", "changes_size"),
    "cs_core.drivers.staging": ("CONTENT_DIR", "STAGING_DIR", "StagingLock", "move_staged_tree",
                                "new_staging_dir", "prune_staging_dirs", "remove_staging_dir",
                                "stage_plain_tree"),
    "cs_core.drivers.optvalues": ("parse_bool", "ram_in_bytes"),
    "cs_core.lazylog": ("getLogger",),
    "cs_core.recordclass": ("define", "evolve", "field", "frozen"),
    "cs_core.userns.idmap": ("is_contiguous",),
    "cs_core.userns.rootless": ("is_rootless",),
    "cs_core.walk": ("Dir", "disk_usage", "open_beneath", "remove_tree", "walk"),
}
# Literal, for type checkers and linters (tests/test_plugin_face.py checks it against _EXPORTS).
__all__ = [
    "CONTENT_DIR",
    "STAGING_DIR",
    "WRITE_FLAGS",
    "ApplyOptions",
    "Dir",
    "PipeStream",
    "StagingLock",
    "apply_logged",
    "apply_tar",
    "changes_size",
    "clean_member_name",
    "compared_xattrs",
    "define",
    "disk_usage",
    "evolve",
    "export_changes",
    "export_tree",
    "field",
    "frozen",
    "fs_magic",
    "fsync_dir",
    "fsync_paths",
    "getLogger",
    "is_contiguous",
    "is_mountpoint",
    "is_rootless",
    "makedirs",
    "mount_of",
    "move_staged_tree",
    "naive_apply_diff",
    "naive_apply_into",
    "new_staging_dir",
    "open_beneath",
    "open_regular",
    "overlay_changes",
    "parse_bool",
    "prune_staging_dirs",
    "ram_in_bytes",
    "remove_staging_dir",
    "remove_tree",
    "stage_plain_tree",
    "syncfs",
    "to_container",
    "to_host",
    "walk",
    "write_in_place",
]

__getattr__, __dir__ = lazy_exports(
    globals(), _EXPORTS, {"naive_apply_diff": ("cs_core.drivers.naive", "apply_diff"),
                         "naive_apply_into": ("cs_core.drivers.naive", "apply_into")})
