"""Fixtures for the core tests: stores in temporary directories and the Go CLI.

Store tests run on vfs and overlay unless ``CS_TEST_DRIVER`` names one; every store a test opens is shut
down afterwards, so drivers that mount (overlay's private home mount) leave nothing behind.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cs_core.store import Store, open_store
from cs_core.testing.gocli import GoCLI


def _drivers() -> list[str]:
    chosen = os.environ.get("CS_TEST_DRIVER")
    return [chosen] if chosen else ["vfs", "overlay"]


@pytest.fixture(params=_drivers())
def driver_name(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    if name != "vfs":
        from cs_core.testing import require_privileged

        require_privileged(f"the {name} driver needs root")
    return name


@pytest.fixture
def store_roots(tmp_path: Path) -> tuple[Path, Path]:
    return tmp_path / "graph", tmp_path / "run"


@pytest.fixture
def make_store(store_roots: tuple[Path, Path], driver_name: str) -> Iterator[Callable[[], Store]]:
    """Open (another handle on) the test's store; all handles are shut down at teardown."""
    opened: list[Store] = []

    def make() -> Store:
        graph, run = store_roots
        store = open_store(graph_root=str(graph), run_root=str(run), driver_name=driver_name)
        opened.append(store)
        return store

    yield make
    for store in reversed(opened):
        store.shutdown(force=True)


@pytest.fixture
def vfs_store(make_store: Callable[[], Store]) -> Store:
    return make_store()


@pytest.fixture
def go_cli(store_roots: tuple[Path, Path], driver_name: str) -> Iterator[GoCLI]:
    graph, run = store_roots
    cli = GoCLI(graph, run, driver_name)
    yield cli
    cli.run("shutdown", "-f", check=False)
