"""Stacks deeper than one overlay mount allows: nesting read-only overlays of <=500 layers."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest
from cs_overlay import mounting, stack
from cs_overlay.driver import OverlayDriver
from cs_overlay.testing import layer_id

from cs_core.drivers.base import CreateOpts, MountOpts


def build_chain(driver: OverlayDriver, n: int, rw_top: bool = True) -> list[str]:
    ids = []
    parent = None
    for i in range(n):
        lid = layer_id(i + 1)
        if rw_top and i == n - 1:
            driver.create_read_write(lid, parent, CreateOpts())
        else:
            driver.create(lid, parent, CreateOpts())
        (driver.home / lid / "diff" / f"f{i}").write_text(str(i))
        ids.append(lid)
        parent = lid
    return ids


def test_plan_keeps_small_stacks_flat() -> None:
    lowers = [str(i) for i in range(500)]
    assert stack.plan(lowers) == (lowers, [])


def test_plan_nests_from_the_bottom() -> None:
    lowers = [str(i) for i in range(999)]
    top, runs = stack.plan(lowers)
    assert top == lowers[:499] and runs == [lowers[499:]]
    top, runs = stack.plan([str(i) for i in range(1000)])
    assert len(runs) == 2 and sum(map(len, runs)) + len(top) == 1000
    # final mount: top lowers + runs + a summary above every run but the bottom one
    assert len(top) + 2 * len(runs) - 1 <= 500
    top, runs = stack.plan([str(i) for i in range(5000)])
    assert [x for run in runs for x in run] + top != [] and all(len(r) <= 500 for r in runs)
    assert top + [x for run in runs for x in run] == [str(i) for i in range(5000)]


def test_summary_records_whiteouts_and_opaque_dirs(tmp_path: Path) -> None:
    low, high = tmp_path / "low", tmp_path / "high"
    (low / "a").mkdir(parents=True)
    os.mknod(low / "a" / "x", stat.S_IFCHR, 0)
    os.mknod(low / "gone", stat.S_IFCHR, 0)
    (high / "gone").mkdir(parents=True)  # recreated above a whiteout: opaque to lower runs
    (high / "o").mkdir()
    os.setxattr(high / "o", "trusted.overlay.opaque", b"y")
    (high / "plain").write_text("not a whiteout")
    dest = tmp_path / "summary"
    assert stack.build_summary([str(high), str(low)], dest)
    assert stat.S_ISCHR(os.lstat(dest / "a" / "x").st_mode)
    assert os.getxattr(dest / "gone", "trusted.overlay.opaque") == b"y"
    assert os.getxattr(dest / "o", "trusted.overlay.opaque") == b"y"
    assert not (dest / "plain").exists()
    (tmp_path / "clean").mkdir()
    (tmp_path / "clean" / "file").write_text("x")
    assert not stack.build_summary([str(tmp_path / "clean")], tmp_path / "none")
    assert not (tmp_path / "none").exists()


@pytest.mark.slow
def test_1000_layer_stack_shows_every_layer(driver: OverlayDriver) -> None:
    from cs_core.testing.privileged import require

    require(mounting.fd_lowers_usable(),
            "kernel lacks fsconfig(FSCONFIG_SET_FD) for overlay lowers (< 6.13)")
    ids = build_chain(driver, 1000)
    top = ids[-1]
    # deletions that cross run boundaries must hold: layer 900 (a middle run) removes a file
    # and empties a directory that layer 10 (the bottom run) created
    (driver.home / ids[10] / "diff" / "gone").write_text("x")
    (driver.home / ids[10] / "diff" / "d").mkdir()
    (driver.home / ids[10] / "diff" / "d" / "inner").write_text("x")
    os.mknod(driver.home / ids[900] / "diff" / "gone", stat.S_IFCHR, 0)
    (driver.home / ids[900] / "diff" / "d").mkdir()
    os.setxattr(driver.home / ids[900] / "diff" / "d", "trusted.overlay.opaque", b"y")
    for opts in (MountOpts(), MountOpts(options=("ro",))):
        start = time.monotonic()
        merged = driver.get(top, opts)
        try:
            elapsed = time.monotonic() - start
            names = set(os.listdir(merged))
            assert {f"f{i}" for i in range(1000)} <= names
            assert (merged / "f0").read_text() == "0" and (merged / "f999").read_text() == "999"
            assert "gone" not in names
            assert os.listdir(merged / "d") == []
            assert elapsed < 5
        finally:
            driver.put(top)
        assert not driver.is_mounted(top, str(merged))
    # nothing of the nested mounts is left behind
    assert not [p for p in mounting.mountinfo_targets() if p.startswith(str(driver.home) + "/")]
    assert not (driver.home / top / "stack").exists()


def test_legacy_mount_falls_back_to_relative_paths(driver: OverlayDriver) -> None:
    ids = build_chain(driver, 120)
    mounting.force_legacy(True)
    try:
        merged = driver.get(ids[-1], MountOpts())
        try:
            assert {f"f{i}" for i in range(120)} <= set(os.listdir(merged))
        finally:
            driver.put(ids[-1])
        assert os.getcwd() != str(driver.home)
    finally:
        mounting.force_legacy(False)


def test_deep_stack_without_new_mount_api_is_a_clear_error(driver: OverlayDriver) -> None:
    from cs_core.errors import StorageError

    ids = build_chain(driver, 520)
    mounting.force_legacy(True)
    try:
        with pytest.raises(StorageError) as info:
            driver.get(ids[-1], MountOpts())
        assert "519 lower layers need a kernel with the new mount API" in str(info.value)
        assert "\n" not in str(info.value)
        assert not driver.is_mounted(ids[-1], str(driver.home / ids[-1] / "merged"))
    finally:
        mounting.force_legacy(False)
