"""The cs_core driver conformance suite, for kernel overlay and for overlay over fuse-overlayfs."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from cs_overlay.testing import unmount_all_under

from cs_core.archive.whiteouts import WhiteoutFormat
from cs_core.drivers.base import DriverConfig, GraphDriver
from cs_core.testing import requires_command
from cs_core.testing.conformance import GraphDriverConformance


class TestOverlayConformance(GraphDriverConformance):
    driver_name = "overlay"
    needs_root = True
    enforces_read_only_mounts = True

    @pytest.fixture(autouse=True)
    def _no_leaked_mounts(self, tmp_path: Path) -> Iterator[None]:
        yield
        unmount_all_under(tmp_path)


class TestFuseOverlayConformance(TestOverlayConformance):
    """The same promises with ``mount_program=fuse-overlayfs`` (AUFS whiteouts, FUSE mounts)."""

    @pytest.fixture
    def driver_config(self, tmp_path: Path) -> DriverConfig:
        requires_command("fuse-overlayfs", "fusermount3")
        graph, run = tmp_path / "graph", tmp_path / "run"
        program = f"overlay.mount_program={shutil.which('fuse-overlayfs')}"
        return DriverConfig(home=graph / "overlay", run_home=run / "overlay", graph_root=graph,
                            run_root=run, options=(program,))

    def test_runs_through_the_mount_program(self, driver: GraphDriver) -> None:
        assert driver.whiteout_format is WhiteoutFormat.AUFS
        assert ("Native Overlay Diff", "false") in driver.status()
