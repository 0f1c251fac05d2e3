"""cs_core: containers/storage for Python (layers, images and containers on local disk).

Start with :func:`open_store`; errors are in :mod:`cs_core.errors`, the progress convention in
:mod:`cs_core.progress`, images in and out in :mod:`cs_core.images`.

The names below are the public face: what a driver package or an embedding program imports
(driver helpers are in :mod:`cs_core.drivers.api`). They are resolved on first use, so
``import cs_core`` (which every CLI run does) costs nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cs_core.lazy import lazy_exports

__version__ = "0.1.0"

if TYPE_CHECKING:
    from cs_core.archive.whiteouts import WhiteoutFormat
    from cs_core.config import StoreOptions
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
    from cs_core.drivers.staging import Differ, StagedLayer, StagedTree, StagingDriver, TreeStager
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
    from cs_core.store import ContainerOptions, ImageOptions, LayerOptions, Store, open_store

_EXPORTS = {
    "cs_core.archive.whiteouts": ("WhiteoutFormat",),
    "cs_core.config": ("StoreOptions",),
    "cs_core.drivers.base": ("ApplyDiffOpts", "ConfigTable", "CreateOpts", "DriverConfig",
                             "FileGetter", "GraphDriver", "MountOpts", "split_option"),
    "cs_core.drivers.hookspecs": ("hookimpl",),
    "cs_core.drivers.staging": ("Differ", "StagedLayer", "StagedTree", "StagingDriver",
                                "TreeStager"),
    "cs_core.errors": ("ArchiveFormatError", "ConfigError", "DriverError", "ExactMessage",
                       "LayerUnknown", "NotSupported", "PluginError", "StorageError",
                       "UnsafeArchive"),
    "cs_core.model": ("NO_MAPS", "ApplyResult", "Change", "IDMap", "IDMapPair"),
    "cs_core.store": ("ContainerOptions", "ImageOptions", "LayerOptions", "Store", "open_store"),
}
# Literal, for type checkers and linters (tests/test_plugin_face.py checks it against _EXPORTS).
__all__ = [
    "NO_MAPS", "ApplyDiffOpts", "ApplyResult", "ArchiveFormatError", "Change", "ConfigError",
    "ConfigTable", "ContainerOptions", "CreateOpts", "Differ", "DriverConfig", "DriverError",
    "ExactMessage", "FileGetter", "GraphDriver", "IDMap", "IDMapPair", "ImageOptions",
    "LayerOptions", "LayerUnknown", "MountOpts", "NotSupported", "PluginError", "StagedLayer",
    "StagedTree", "StagingDriver", "StorageError", "Store", "StoreOptions", "TreeStager",
    "UnsafeArchive", "WhiteoutFormat",
    "hookimpl", "open_store", "split_option",
]

__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)
