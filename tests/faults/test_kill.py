"""SIGKILL at random instants of every mutating operation, on vfs and overlay.

Per driver the campaign runs until ``CS_FAULT_KILLS`` / 2 kills (default 100, so 200 per CI
run across both drivers) or its time budget (``CS_FAULT_SECONDS``, default 120 s) runs out;
a campaign that runs out of time before a quarter of its kills fails. The seed comes from
``CS_FAULT_SEED`` (default: fixed) so a failure can be replayed.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from faults.harness import run_campaign

KILLS = int(os.environ.get("CS_FAULT_KILLS", "200"))
SECONDS = float(os.environ.get("CS_FAULT_SECONDS", "120"))
SEED = int(os.environ.get("CS_FAULT_SEED", "20261128"))


@pytest.mark.parametrize("driver", ["vfs", "overlay"])
def test_sigkill_anywhere_loses_nothing(driver: str, tmp_path: Path) -> None:
    if driver != "vfs":
        from cs_core.testing import require_privileged

        require_privileged("overlay mounts need root")
    graph, run = tmp_path / "graph", tmp_path / "run"
    wanted = max(1, KILLS // 2)
    try:
        stats = run_campaign(graph, run, driver, SEED + (driver == "overlay"), wanted, SECONDS)
    finally:
        _shutdown(graph, run, driver)
    print(f"\n{driver}: {stats}")
    assert stats.kills >= min(wanted, max(1, wanted // 4)), stats
    assert stats.verified >= stats.kills
    # Every kind of operation was interrupted at least once in a full-size run.
    if wanted >= 100:
        assert len(stats.by_kind) >= 9, stats.by_kind


def _shutdown(graph: Path, run: Path, driver: str) -> None:
    from cs_core.store import open_store

    if graph.exists():
        open_store(graph_root=str(graph), run_root=str(run), driver_name=driver).shutdown(True)
