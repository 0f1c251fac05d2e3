"""Fixtures: a fresh overlay driver home per test, with every mount under it torn down."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cs_overlay.driver import OverlayDriver
from cs_overlay.testing import unmount_all_under

from cs_core.drivers.base import DriverConfig
from cs_core.testing import require_privileged


@pytest.fixture
def store_dirs(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    require_privileged()
    graph, run = tmp_path / "graph", tmp_path / "run"
    try:
        yield graph, run
    finally:
        unmount_all_under(tmp_path)


DriverFactory = Callable[..., OverlayDriver]


@pytest.fixture
def make_driver(store_dirs: tuple[Path, Path]) -> Iterator[DriverFactory]:
    graph, run = store_dirs
    made: list[OverlayDriver] = []

    def factory(*options: str) -> OverlayDriver:
        cfg = DriverConfig(home=graph / "overlay", run_home=run / "overlay", graph_root=graph,
                           run_root=run, options=tuple(options))
        d = OverlayDriver(cfg)
        made.append(d)
        return d

    try:
        yield factory
    finally:
        for d in made:
            with contextlib.suppress(Exception):
                d.cleanup()


@pytest.fixture
def driver(make_driver: DriverFactory) -> OverlayDriver:
    return make_driver()
