"""XFS project quotas on a real XFS loop filesystem (this kernel lacks XFS quota support)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from cs_overlay import quota
from cs_overlay.driver import OverlayDriver
from cs_overlay.testing import layer_id, unmount_all_under

from cs_core.drivers.base import CreateOpts, DriverConfig, MountOpts
from cs_core.errors import NotSupported
from cs_core.testing import require_privileged, requires_command
from cs_core.testing.loopfs import loop_filesystem


@pytest.fixture
def xfs() -> Iterator[Path]:
    require_privileged()
    requires_command("mkfs.xfs")
    with loop_filesystem("xfs", "320M") as mnt:
        try:
            yield mnt
        finally:
            unmount_all_under(mnt / "graph")


def config(mnt: Path, *options: str) -> DriverConfig:
    return DriverConfig(home=mnt / "graph" / "overlay", run_home=mnt / "run" / "overlay",
                        graph_root=mnt / "graph", run_root=mnt / "run", options=options)


def test_project_id_ioctls(xfs: Path) -> None:
    d = xfs / "dir"
    d.mkdir()
    assert quota.get_project_id(str(d)) == 0
    quota.set_project_id(str(d), 4242)
    assert quota.get_project_id(str(d)) == 4242
    (d / "child").mkdir()
    assert quota.get_project_id(str(d / "child")) == 4242  # PROJINHERIT


def test_size_option_without_kernel_quota_is_a_clear_error(xfs: Path) -> None:
    with pytest.raises(NotSupported) as info:
        OverlayDriver(config(xfs, "overlay.size=10M"))
    msg = str(info.value)
    assert msg.startswith("storage options overlay.size and overlay.inodes not supported. Filesystem "
                          "does not support Project Quota: failed to set quota limit for projid ")
    assert "\n" not in msg


def test_xfs_without_quota_options_works(xfs: Path) -> None:
    d = OverlayDriver(config(xfs))
    try:
        assert ("Backing Filesystem", "xfs") in d.status()
        assert d.quota is None
        d.create_read_write(layer_id(1), None, CreateOpts())
        merged = d.get(layer_id(1), MountOpts())
        try:
            (merged / "f").write_text("x")
        finally:
            d.put(layer_id(1))
        assert os.path.exists(d.home / layer_id(1) / "diff" / "f")
    finally:
        d.cleanup()
