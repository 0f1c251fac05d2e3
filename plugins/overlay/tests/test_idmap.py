"""update_layer_id_map re-owns through the mount, then rotates diff/ to diff1 as Go does."""

from __future__ import annotations

import os

from cs_overlay.driver import OverlayDriver
from cs_overlay.testing import layer_id

from cs_core.drivers.base import CreateOpts, MountOpts
from cs_core.model import IDMap


def test_update_layer_id_map_rotates_diff(driver: OverlayDriver) -> None:
    base, child = layer_id(1), layer_id(2)
    driver.create(base, None, CreateOpts())
    (driver.home / base / "diff" / "f").write_text("base")
    driver.create(child, base, CreateOpts())
    (driver.home / child / "diff" / "own").write_text("child")
    host = ([IDMap(0, 100000, 65536)], [IDMap(0, 200000, 65536)])
    driver.update_layer_id_map(child, ((), ()), host)

    d = driver.home / child
    assert sorted(os.listdir(d / "diff1")) == ["f", "own"]  # copy-ups and the old upper
    assert os.listdir(d / "diff") == []
    assert os.stat(d / "diff1" / "f").st_uid == 100000
    assert os.stat(driver.home / base / "diff" / "f").st_uid == 0  # the parent is untouched
    merged = driver.get(child, MountOpts())
    try:
        st = os.stat(merged / "f")
        assert (st.st_uid, st.st_gid) == (100000, 200000)
        assert (merged / "own").read_text() == "child"
        (merged / "new").write_text("n")
    finally:
        driver.put(child)
    assert os.listdir(d / "diff") == ["new"]
    # the rotated dir is served as a lower to readers that never mount
    with driver.diff_getter(child).open("own") as fh:
        assert fh.read() == b"child"


def test_rotated_diff_mounts_with_legacy_relative_paths(driver: OverlayDriver) -> None:
    from cs_overlay import mounting

    base, child = layer_id(1), layer_id(2)
    driver.create(base, None, CreateOpts())
    driver.create(child, base, CreateOpts())
    (driver.home / child / "diff" / "own").write_text("child")
    driver.update_layer_id_map(child, ((), ()), ([IDMap(0, 1000, 10)], [IDMap(0, 1000, 10)]))
    top = layer_id(3)
    driver.create(top, child, CreateOpts())
    mounting.force_legacy(True)
    try:
        # chdir-relative names through the short link: l/LINK/../diff1 must stay unfolded
        spec = mounting.OverlayMount(lowers=[f"{driver.home}/l/X/../diff1"], upper=None)
        assert spec.data_string(relative_to=driver.home) == "lowerdir=l/X/../diff1"
        merged = driver.get(top, MountOpts())
        try:
            assert (merged / "own").read_text() == "child"
        finally:
            driver.put(top)
    finally:
        mounting.force_legacy(False)
