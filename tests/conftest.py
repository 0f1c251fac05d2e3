"""Fixtures for the core tests: a vfs store in a temporary directory and the Go CLI."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cs_core.store import Store, open_store


@pytest.fixture
def store_roots(tmp_path: Path) -> tuple[Path, Path]:
    return tmp_path / "graph", tmp_path / "run"


@pytest.fixture
def vfs_store(store_roots: tuple[Path, Path]) -> Iterator[Store]:
    graph, run = store_roots
    store = open_store(graph_root=str(graph), run_root=str(run), driver_name="vfs")
    yield store
    store.close()


class GoCLI:
    """The Go reference CLI on a given store."""

    def __init__(self, graph: Path, run: Path, driver: str = "vfs") -> None:
        exe = shutil.which("containers-storage", path="/usr/bin:/usr/local/bin")
        assert exe is not None
        self.base = [exe, "-g", str(graph), "-R", str(run), "-s", driver]

    def run(self, *args: str, input: bytes | None = None, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        proc = subprocess.run([*self.base, *args], input=input, capture_output=True, timeout=120)
        if check and proc.returncode != 0:
            raise AssertionError(f"Go CLI {args} failed: {proc.stderr.decode()}{proc.stdout.decode()}")
        return proc

    def out(self, *args: str) -> str:
        return self.run(*args).stdout.decode()

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "--json").stdout)


@pytest.fixture
def go_cli(store_roots: tuple[Path, Path]) -> GoCLI:
    from cs_core.testing import requires_command

    if shutil.which("containers-storage", path="/usr/bin:/usr/local/bin") is None:
        requires_command("/usr/bin/containers-storage")
    graph, run = store_roots
    return GoCLI(graph, run)
