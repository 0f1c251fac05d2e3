"""Read-only additional image stores (``overlay.imagestore``): lookups fall back to them."""

from __future__ import annotations

import os
from pathlib import Path

from cs_overlay.driver import OverlayDriver
from cs_overlay.testing import layer_id, tree

from cs_core.drivers.base import CreateOpts, DriverConfig, MountOpts


def test_layers_from_additional_store(tmp_path: Path, store_dirs: tuple[Path, Path]) -> None:
    graph, run = store_dirs
    ro_graph = tmp_path / "ro-graph"
    ro = OverlayDriver(DriverConfig(home=ro_graph / "overlay", run_home=tmp_path / "ro-run" / "overlay",
                                    graph_root=ro_graph, run_root=tmp_path / "ro-run",
                                    options=("overlay.skip_mount_home=true",)))
    base = layer_id(1)
    ro.create(base, None, CreateOpts())
    (ro.home / base / "diff" / "from-ro").write_text("ro")

    d = OverlayDriver(DriverConfig(home=graph / "overlay", run_home=run / "overlay", graph_root=graph,
                                   run_root=run, options=(f"overlay.imagestore={ro_graph}",)))
    try:
        assert d.additional_image_stores() == [ro_graph]
        assert d.exists(base)
        merged = d.get(base, MountOpts())
        try:
            # layers of a read-only store mount read-only, with merged/ in our run home
            assert merged == run / "overlay" / base / "merged"
            assert os.listdir(merged) == ["from-ro"]
            assert os.statvfs(merged).f_flag & os.ST_RDONLY
        finally:
            d.put(base)
        child = layer_id(2)
        d.create_read_write(child, base, CreateOpts())
        assert (d.home / child / "lower").read_text() == f"l/{(ro.home / base / 'link').read_text()}"
        merged = d.get(child, MountOpts())
        try:
            (merged / "mine").write_text("rw")
            assert tree(merged) == {"from-ro": ("file", "ro"), "mine": ("file", "rw")}
        finally:
            d.put(child)
        assert d.metadata(child)["LowerDir"] == str(ro.home / base / "diff")
        assert not (ro.home / base / "diff" / "mine").exists()
    finally:
        d.cleanup()


def test_split_image_store_holds_read_only_layers(tmp_path: Path, store_dirs: tuple[Path, Path]) -> None:
    graph, run = store_dirs
    images = tmp_path / "images"
    d = OverlayDriver(DriverConfig(home=graph / "overlay", run_home=run / "overlay", graph_root=graph,
                                   run_root=run, image_store=images,
                                   options=("overlay.skip_mount_home=true",)))
    base, ctr = layer_id(1), layer_id(2)
    d.create(base, None, CreateOpts())
    d.create_read_write(ctr, base, CreateOpts())
    split = images / "overlay"
    assert (split / base / "diff").is_dir() and not (graph / "overlay" / base).exists()
    assert (graph / "overlay" / ctr / "diff").is_dir()
    base_link = (split / base / "link").read_text()
    assert os.readlink(split / "l" / base_link) == f"../{base}/diff"
    assert (graph / "overlay" / ctr / "lower").read_text() == f"l/{base_link}"
    assert sorted(d.list_layers()) == [base, ctr]
    (split / base / "diff" / "img").write_text("i")
    merged = d.get(ctr, MountOpts())
    try:
        (merged / "c").write_text("c")
        assert tree(merged) == {"img": ("file", "i"), "c": ("file", "c")}
    finally:
        d.put(ctr)
    d.remove(ctr)
    d.remove(base)
    assert os.listdir(split / "l") == [] and os.listdir(graph / "overlay" / "l") == []
    assert d.list_layers() == []
