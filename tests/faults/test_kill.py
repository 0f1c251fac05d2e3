"""SIGKILL at random instants of every mutating operation, on vfs and overlay.

Per driver the campaign runs until ``CS_FAULT_KILLS`` / 2 kills have landed mid-operation
(after the worker's BEGIN, before its ACK; default 100, so 200 per CI run across both drivers),
each followed by a reopen checked against the model; one that runs out of its time budget
(``CS_FAULT_SECONDS``, default 200 s) first fails. The seed comes from
``CS_FAULT_SEED`` (default: fixed) so a failure can be replayed.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from faults.harness import run_campaign

KILLS = int(os.environ.get("CS_FAULT_KILLS", "200"))
SECONDS = float(os.environ.get("CS_FAULT_SECONDS", "200"))
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
    # Only a kill that landed between BEGIN and ACK counts; the campaign ran to its full count
    # (a slow machine gets more time, CS_FAULT_SECONDS, not a lower bar).
    assert stats.kills == wanted, f"{stats.kills} of {wanted} kills landed mid-operation: {stats}"
    # Each kill, mid-operation or late, was followed by a reopen that matched the model.
    assert stats.kills_verified == stats.kills + stats.late_kills, stats
    # Every kind of operation was interrupted at least once in a full-size run.
    if wanted >= 100:
        assert len(stats.by_kind) >= 9, stats.by_kind


def _shutdown(graph: Path, run: Path, driver: str) -> None:
    from cs_core.store import open_store

    if graph.exists():
        open_store(graph_root=str(graph), run_root=str(run), driver_name=driver).shutdown(True)
