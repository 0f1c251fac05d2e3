"""Through the Store: mount counts in mountpoints.json shared with Go, ro mounts, shutdown."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from cs_overlay import mounting
from cs_overlay.testing import unmount_all_under

from cs_core.store import Store, open_store
from cs_core.testing import go_cli_path, require_privileged
from cs_core.testing.gocli import GoCLI


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    require_privileged()
    s = open_store(graph_root=str(tmp_path / "graph"), run_root=str(tmp_path / "run"),
                   driver_name="overlay")
    try:
        yield s
    finally:
        s.shutdown(force=True)
        unmount_all_under(tmp_path)


def overlay_mounts(root: Path) -> list[str]:
    return [p for p, t in mounting.mountinfo_targets().items()
            if t == "overlay" and p.startswith(str(root) + "/")]


def test_counts_ro_and_shutdown(store: Store, tmp_path: Path) -> None:
    base = store.create_layer()
    ctr = store.create_layer(parent=base.id, writeable=True)
    first = store.mount(ctr.id)
    assert store.mount(ctr.id) == first and store.mounted(ctr.id) == 2
    points = json.loads((tmp_path / "run" / "overlay-layers" / "mountpoints.json").read_text())
    assert points == [{"id": ctr.id, "path": first, "count": 2}]
    assert store.unmount(ctr.id) is True  # one reference left: still mounted
    assert overlay_mounts(tmp_path) == [first]
    ro = store.mount(base.id, options=["ro"])
    with pytest.raises(OSError):
        (Path(ro) / "x").write_text("no")
    assert sorted(overlay_mounts(tmp_path)) == sorted([first, ro])
    assert sorted(store.shutdown(force=True)) == sorted([base.id, ctr.id])
    assert overlay_mounts(tmp_path) == []
    assert Path(first).is_dir() and Path(ro).is_dir()  # merged/ stays
    assert not mounting.is_mountpoint(str(tmp_path / "graph" / "overlay"))  # home bind mount undone


def test_go_sees_our_mount_count(store: Store, tmp_path: Path) -> None:
    go_cli_path()
    ctr = store.create_layer(writeable=True)
    path = store.mount(ctr.id)
    go = GoCLI(tmp_path / "graph", tmp_path / "run", "overlay")
    # (no Go "shutdown -f" here: 1.43 loops forever on any mounted layer)
    assert go.out("mounted", ctr.id).strip() == f"{ctr.id} mounted"
    assert path == str(tmp_path / "graph" / "overlay" / ctr.id / "merged")
    go.run("unmount", ctr.id)  # Go drops our reference and unmounts
    store.layers()
    assert store.mounted(ctr.id) == 0
    assert overlay_mounts(tmp_path) == []
