"""Fixtures for cs_core and driver packages' tests (exposed by the ``cs_core`` pytest plugin).

``cs_registry``  a fresh plugin registry over the installed entry points.
``cs_driver``    the driver name for ``cs_tmp_store``: the ``cs_driver("name")`` marker's
                 argument, else ``vfs``; driver packages may also override the fixture.
``cs_tmp_store`` a store in the test's temporary directory with that driver, shut down
                 (everything unmounted) afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from cs_core.drivers.plugins import PluginRegistry

if TYPE_CHECKING:
    from cs_core.store import Store

DEFAULT_DRIVER = "vfs"


@pytest.fixture
def cs_registry() -> PluginRegistry:
    return PluginRegistry()


@pytest.fixture
def cs_driver(request: pytest.FixtureRequest) -> str:
    marker = request.node.get_closest_marker("cs_driver")
    if marker is not None and marker.args:
        return str(marker.args[0])
    return DEFAULT_DRIVER


@pytest.fixture
def cs_tmp_store(tmp_path: Path, cs_driver: str, cs_registry: PluginRegistry) -> Iterator[Store]:
    from cs_core.config import StoreOptions
    from cs_core.store import Store

    store = Store(
        StoreOptions(graph_root=str(tmp_path / "graph"), run_root=str(tmp_path / "run"),
                     driver_name=cs_driver),
        cs_registry,
    )
    try:
        yield store
    finally:
        store.shutdown(force=True)
