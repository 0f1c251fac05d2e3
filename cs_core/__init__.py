"""cs_core: containers/storage for Python (layers, images and containers on local disk).

Start with :func:`open_store`; errors are in :mod:`cs_core.errors`, the progress
convention in :mod:`cs_core.progress`, images in and out in :mod:`cs_core.images`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

# -- the library API's entry points (api). Loaded on first use, so that importing a
# submodule (every CLI run does) does not pay for the store and its dependencies.
__version__ = "0.1.0"

if TYPE_CHECKING:
    from cs_core.config import StoreOptions
    from cs_core.errors import StorageError
    from cs_core.store import ContainerOptions, ImageOptions, LayerOptions, Store, open_store

_LAZY = {
    "open_store": "cs_core.store", "Store": "cs_core.store", "LayerOptions": "cs_core.store",
    "ImageOptions": "cs_core.store", "ContainerOptions": "cs_core.store",
    "StoreOptions": "cs_core.config", "StorageError": "cs_core.errors",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'cs_core' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


__all__ = ["ContainerOptions", "ImageOptions", "LayerOptions", "StorageError", "Store",
           "StoreOptions", "__version__", "open_store"]
# -- end of the api block
