"""pytest plugin (entry point ``pytest11: cs_core``): fixtures for driver packages' tests.

``cs_registry``  a fresh plugin registry over the installed entry points.
``cs_tmp_store`` a store in the test's temporary directory; the driver is the test's
                 ``cs_driver`` fixture (default vfs; override it), shut down afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cs_core.drivers.plugins import PluginRegistry


@pytest.fixture
def cs_registry() -> PluginRegistry:
    return PluginRegistry()


@pytest.fixture
def cs_driver() -> str:
    return "vfs"


@pytest.fixture
def cs_tmp_store(tmp_path: Path, cs_driver: str, cs_registry: PluginRegistry) -> Iterator[object]:
    from cs_core.config import StoreOptions
    from cs_core.store import Store

    store = Store(
        StoreOptions(graph_root=str(tmp_path / "graph"), run_root=str(tmp_path / "run"),
                     driver_name=cs_driver),
        cs_registry,
    )
    yield store
    store.shutdown(force=True)
