"""Mounting: read-write and read-only overlays, whiteouts, put, mount checks, the home mount."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from cs_overlay import mounting
from cs_overlay.driver import OverlayDriver
from cs_overlay.testing import layer_id

from cs_core.drivers.base import CreateOpts, MountOpts


def whiteout(path: Path) -> None:
    os.mknod(path, stat.S_IFCHR, 0)


def three_layers(driver: OverlayDriver) -> tuple[str, str, str]:
    a, b, c = layer_id(1), layer_id(2), layer_id(3)
    driver.create(a, None, CreateOpts())
    (driver.home / a / "diff" / "keep").write_text("a")
    (driver.home / a / "diff" / "gone").write_text("a")
    (driver.home / a / "diff" / "dir").mkdir()
    (driver.home / a / "diff" / "dir" / "old").write_text("a")
    driver.create(b, a, CreateOpts())
    whiteout(driver.home / b / "diff" / "gone")
    (driver.home / b / "diff" / "dir").mkdir()
    os.setxattr(driver.home / b / "diff" / "dir", "trusted.overlay.opaque", b"y")
    (driver.home / b / "diff" / "dir" / "new").write_text("b")
    driver.create_read_write(c, b, CreateOpts())
    return a, b, c


@pytest.fixture(params=["new-api", "legacy"])
def mount_api(request: pytest.FixtureRequest) -> object:
    mounting.force_legacy(request.param == "legacy")
    yield request.param
    mounting.force_legacy(False)


def test_read_write_mount_and_put(driver: OverlayDriver, mount_api: object) -> None:
    _a, _b, c = three_layers(driver)
    merged = driver.get(c, MountOpts())
    try:
        assert merged == driver.home / c / "merged"
        assert driver.is_mounted(c, str(merged))
        assert sorted(os.listdir(merged)) == ["dir", "keep"]
        assert os.listdir(merged / "dir") == ["new"]
        (merged / "written").write_text("c")
        os.unlink(merged / "keep")
    finally:
        driver.put(c)
    assert not driver.is_mounted(c, str(merged))
    assert merged.is_dir()  # put keeps merged/
    diff = driver.home / c / "diff"
    assert (diff / "written").read_text() == "c"
    st = os.lstat(diff / "keep")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def test_read_only_mount_uses_diff_as_top_lower(driver: OverlayDriver, mount_api: object) -> None:
    _, b, _ = three_layers(driver)
    merged = driver.get(b, MountOpts(options=("ro",)))
    try:
        assert sorted(os.listdir(merged)) == ["dir", "keep"]
        with pytest.raises(OSError):
            (merged / "x").write_text("no")
    finally:
        driver.put(b)


def test_base_layer_mounts_over_empty(driver: OverlayDriver, mount_api: object) -> None:
    driver.create(layer_id(1), None, CreateOpts())
    (driver.home / layer_id(1) / "diff" / "f").write_text("1")
    for opts in (MountOpts(), MountOpts(options=("ro",))):
        merged = driver.get(layer_id(1), opts)
        try:
            assert os.listdir(merged) == ["f"]
        finally:
            driver.put(layer_id(1))


def test_configured_mountopt_applies_only_without_caller_options(
        make_driver: Callable[..., OverlayDriver]) -> None:
    driver = make_driver("overlay.mountopt=nodev,noatime")
    driver.create(layer_id(1), None, CreateOpts())
    merged = driver.get(layer_id(1), MountOpts())
    try:
        flags = os.statvfs(merged).f_flag
        assert flags & os.ST_NODEV and flags & os.ST_NOATIME
    finally:
        driver.put(layer_id(1))
    merged = driver.get(layer_id(1), MountOpts(options=("ro",)))
    try:
        flags = os.statvfs(merged).f_flag
        assert flags & os.ST_RDONLY and not flags & os.ST_NODEV
    finally:
        driver.put(layer_id(1))


def test_home_is_private_bind_mount_until_cleanup(make_driver: Callable[..., OverlayDriver]) -> None:
    driver = make_driver()
    home = str(driver.home)
    assert mounting.is_mountpoint(home)
    make_driver()  # idempotent: no second bind mount stacked
    assert Path("/proc/self/mountinfo").read_text().count(f" {home} ") == 1
    driver.cleanup()
    assert not mounting.is_mountpoint(home)


def test_skip_mount_home(make_driver: Callable[..., OverlayDriver]) -> None:
    driver = make_driver("overlay.skip_mount_home=true")
    assert not mounting.is_mountpoint(str(driver.home))


def test_volatile_mount(driver: OverlayDriver) -> None:
    driver.create_read_write(layer_id(1), None, CreateOpts())
    merged = driver.get(layer_id(1), MountOpts(volatile=True))
    try:
        line = next(ln for ln in Path("/proc/self/mountinfo").read_text().splitlines() if f" {merged} " in ln)
        assert "volatile" in line
    finally:
        driver.put(layer_id(1))
    # a second volatile mount must not trip over the kernel's incompat marker
    driver.get(layer_id(1), MountOpts(volatile=True))
    driver.put(layer_id(1))


def test_mount_missing_layer_is_layer_unknown(driver: OverlayDriver) -> None:
    from cs_core.errors import LayerUnknown

    with pytest.raises(LayerUnknown):
        driver.get(layer_id(9), MountOpts())


def test_diff_getter_reads_without_mounting(driver: OverlayDriver) -> None:
    _a, _b, c = three_layers(driver)
    (driver.home / c / "diff" / "top").write_text("c")
    getter = driver.diff_getter(c)
    with getter.open("top") as fh:
        assert fh.read() == b"c"
    with getter.open("dir/new") as fh:
        assert fh.read() == b"b"
    with getter.open("keep") as fh:
        assert fh.read() == b"a"
    with pytest.raises(FileNotFoundError):
        getter.open("nothing")
    getter.close()


def test_home_with_paths_longer_than_fsconfig_takes(tmp_path: Path, store_dirs: object) -> None:
    from cs_core.drivers.base import DriverConfig

    deep = tmp_path / ("d" * 120) / ("e" * 120)  # upperdir alone is > 256 bytes
    cfg = DriverConfig(home=deep / "overlay", run_home=tmp_path / "run2" / "overlay", graph_root=deep,
                       run_root=tmp_path / "run2", options=("overlay.skip_mount_home=true",))
    d = OverlayDriver(cfg)
    d.create(layer_id(1), None, CreateOpts())
    (d.home / layer_id(1) / "diff" / "f").write_text("1")
    d.create_read_write(layer_id(2), layer_id(1), CreateOpts())
    assert len(str(d.home / layer_id(2) / "diff")) > 256
    merged = d.get(layer_id(2), MountOpts())
    try:
        assert os.listdir(merged) == ["f"]
        (merged / "g").write_text("2")
    finally:
        d.put(layer_id(2))
    assert (d.home / layer_id(2) / "diff" / "g").read_text() == "2"
