"""Fixtures for the core tests: a vfs store in a temporary directory and the Go CLI."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from cs_core.store import Store, open_store
from cs_core.testing.gocli import GoCLI


@pytest.fixture
def store_roots(tmp_path: Path) -> tuple[Path, Path]:
    return tmp_path / "graph", tmp_path / "run"


@pytest.fixture
def vfs_store(store_roots: tuple[Path, Path]) -> Iterator[Store]:
    graph, run = store_roots
    store = open_store(graph_root=str(graph), run_root=str(run), driver_name="vfs")
    yield store
    store.close()


@pytest.fixture
def go_cli(store_roots: tuple[Path, Path]) -> GoCLI:
    from cs_core.testing import requires_command

    if shutil.which("containers-storage", path="/usr/bin:/usr/local/bin") is None:
        requires_command("/usr/bin/containers-storage")
    graph, run = store_roots
    return GoCLI(graph, run)
