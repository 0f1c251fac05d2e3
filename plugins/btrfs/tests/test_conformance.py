"""The shared graph-driver conformance suite, with the driver home on the loopback btrfs."""

from __future__ import annotations

from pathlib import Path

import pytest

from cs_core.drivers.base import DriverConfig
from cs_core.testing.conformance import GraphDriverConformance


class TestBtrfsConformance(GraphDriverConformance):
    driver_name = "btrfs"
    needs_root = True

    @pytest.fixture
    def driver_config(self, graph_dir: Path) -> DriverConfig:
        graph, run = graph_dir / "graph", graph_dir / "run"
        return DriverConfig(home=graph / "btrfs", run_home=run / "btrfs", graph_root=graph, run_root=run,
                            options=self.driver_options)


class TestBtrfsConformanceWithQuotas(GraphDriverConformance):
    """The same promises with qgroups on (every removal then also drops a qgroup)."""

    driver_name = "btrfs"
    needs_root = True
    driver_options = ("btrfs.min_space=1M", "btrfs.size=64M")

    @pytest.fixture
    def driver_config(self, quota_dir: Path) -> DriverConfig:
        graph, run = quota_dir / "graph", quota_dir / "run"
        return DriverConfig(home=graph / "btrfs", run_home=run / "btrfs", graph_root=graph, run_root=run,
                            options=self.driver_options)
