"""cs_core: containers/storage for Python.

The names below are the public face: what a driver package or an embedding program imports
(driver helpers are in :mod:`cs_core.drivers.api`, errors in :mod:`cs_core.errors`). They are
resolved on first use, so ``import cs_core`` (which every CLI run does) costs nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cs_core.lazy import lazy_exports

if TYPE_CHECKING:
    from cs_core.archive.whiteouts import WhiteoutFormat
    from cs_core.drivers.base import (
        ApplyDiffOpts,
        ConfigTable,
        CreateOpts,
        DriverConfig,
        FileGetter,
        GraphDriver,
        MountOpts,
        split_option,
    )
    from cs_core.drivers.hookspecs import hookimpl
    from cs_core.drivers.staging import Differ, StagedLayer, StagingDriver
    from cs_core.errors import (
        ArchiveFormatError,
        ConfigError,
        DriverError,
        ExactMessage,
        LayerUnknown,
        NotSupported,
        PluginError,
        StorageError,
        UnsafeArchive,
    )
    from cs_core.model import NO_MAPS, ApplyResult, Change, IDMap, IDMapPair
    from cs_core.store import Store, open_store

_EXPORTS = {
    "cs_core.archive.whiteouts": ("WhiteoutFormat",),
    "cs_core.drivers.base": ("ApplyDiffOpts", "ConfigTable", "CreateOpts", "DriverConfig",
                             "FileGetter", "GraphDriver", "MountOpts", "split_option"),
    "cs_core.drivers.hookspecs": ("hookimpl",),
    "cs_core.drivers.staging": ("Differ", "StagedLayer", "StagingDriver"),
    "cs_core.errors": ("ArchiveFormatError", "ConfigError", "DriverError", "ExactMessage",
                       "LayerUnknown", "NotSupported", "PluginError", "StorageError",
                       "UnsafeArchive"),
    "cs_core.model": ("NO_MAPS", "ApplyResult", "Change", "IDMap", "IDMapPair"),
    "cs_core.store": ("Store", "open_store"),
}
# Literal, for type checkers and linters (tests/test_plugin_face.py checks it against _EXPORTS).
__all__ = [
    "NO_MAPS", "ApplyDiffOpts", "ApplyResult", "ArchiveFormatError", "Change", "ConfigError",
    "ConfigTable", "CreateOpts", "Differ", "DriverConfig", "DriverError", "ExactMessage",
    "FileGetter", "GraphDriver", "IDMap", "IDMapPair", "LayerUnknown", "MountOpts", "NotSupported",
    "PluginError", "StagedLayer", "StagingDriver", "StorageError", "Store", "UnsafeArchive",
    "WhiteoutFormat", "hookimpl", "open_store", "split_option",
]

__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)
