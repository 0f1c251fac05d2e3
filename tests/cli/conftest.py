"""Fixtures for CLI tests: our CLI in a subprocess on a real store, and mount cleanup."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from cs_core.testing.loopfs import unmount_under

__all__ = ["unmount_under"]


def available_driver() -> str:
    """vfs when its package is installed; otherwise overlay (which needs root and mounts)."""
    from cs_core.drivers.plugins import PluginRegistry
    from cs_core.testing import require_privileged

    registry = PluginRegistry()
    if "vfs" in registry.plugins and registry.load("vfs").loaded:
        return "vfs"
    require_privileged("the overlay driver needs root (vfs is not installed)")
    return "overlay"


@attrs.define
class Ran:
    rc: int
    out: str
    err: str
    raw: bytes


@attrs.define
class CLI:
    """Our CLI bound to one store."""

    graph: Path
    run_root: Path
    driver: str

    def base(self) -> list[str]:
        return [sys.executable, "-m", "cs_core", "-g", str(self.graph), "-R", str(self.run_root),
                "-s", self.driver]

    def __call__(self, *args: str, stdin: bytes | None = None, bare: bool = False,
                 env: dict[str, str] | None = None) -> Ran:
        cmd = [sys.executable, "-m", "cs_core", *args] if bare else [*self.base(), *args]
        proc = subprocess.run(cmd, input=stdin, capture_output=True, timeout=120,
                              env={**os.environ, **(env or {})})
        return Ran(proc.returncode, proc.stdout.decode("utf-8", "replace"),
                   proc.stderr.decode("utf-8", "replace"), proc.stdout)

    def ok(self, *args: str, stdin: bytes | None = None) -> str:
        r = self(*args, stdin=stdin)
        assert r.rc == 0, f"{args}: rc={r.rc}\n{r.out}\n{r.err}"
        return r.out


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[CLI]:
    driver = available_driver()
    runner = CLI(tmp_path / "g", tmp_path / "r", driver)
    try:
        yield runner
    finally:
        runner("shutdown", "-f")
        unmount_under(tmp_path)


@pytest.fixture
def bare(tmp_path: Path) -> CLI:
    """Our CLI for invocations that never open a store (usage, parsing errors)."""
    return CLI(tmp_path / "g", tmp_path / "r", "vfs")
