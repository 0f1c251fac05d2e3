"""Go's containers-storage and cs_core on one overlay store: each mounts the other's layers."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from cs_overlay.testing import tree, unmount_all_under

from cs_core.store import Store, open_store
from cs_core.testing import go_cli_path, require_privileged
from cs_core.testing.gocli import GoCLI

pytestmark = pytest.mark.interop


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[tuple[GoCLI, Store]]:
    require_privileged()
    go_cli_path()
    graph, run = tmp_path / "graph", tmp_path / "run"
    go = GoCLI(graph, run, "overlay")
    go.run("layers")  # Go initialises the home first, as on a machine podman already used
    store = open_store(graph_root=str(graph), run_root=str(run), driver_name="overlay")
    try:
        yield go, store
    finally:
        try:
            store.shutdown(force=True)
        finally:
            unmount_all_under(tmp_path)


def go_tree(go: GoCLI, layer: str) -> dict[str, tuple[str, str]]:
    merged = Path(go.out("mount", layer).strip())
    try:
        return tree(merged)
    finally:
        go.run("unmount", layer)


def our_tree(store: Store, layer: str) -> dict[str, tuple[str, str]]:
    merged = Path(store.mount(layer))
    try:
        return tree(merged)
    finally:
        store.unmount(layer)


def go_write(go: GoCLI, layer: str, files: dict[str, str], delete: tuple[str, ...] = ()) -> None:
    merged = Path(go.out("mount", layer).strip())
    try:
        for name, content in files.items():
            (merged / name).parent.mkdir(parents=True, exist_ok=True)
            (merged / name).write_text(content)
        for name in delete:
            p = merged / name
            if p.is_dir():
                for child in sorted(p.rglob("*"), reverse=True):
                    child.unlink() if not child.is_dir() else child.rmdir()
                p.rmdir()
            else:
                p.unlink()
    finally:
        go.run("unmount", layer)


def test_go_layers_mount_in_cs_core(stores: tuple[GoCLI, Store]) -> None:
    go, store = stores
    base = go.out("create-layer").strip().splitlines()[-1]
    go_write(go, base, {"etc/os": "base", "keep": "k", "gone": "g", "dir/old": "o"})
    child = go.out("create-layer", base).strip().splitlines()[-1]
    go_write(go, child, {"dir2/new": "n", "etc/os": "child"}, delete=("gone", "dir"))
    home = store.graph_root / "overlay"
    st = os.lstat(home / child / "diff" / "gone")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0  # Go's kernel whiteout
    expected = go_tree(go, child)
    assert "gone" not in expected and "dir" not in expected and expected["etc/os"] == ("file", "child")
    store.layers()  # reload Go's records
    assert our_tree(store, child) == expected
    # and a container layer of ours on top of Go's layers
    top = store.create_layer(parent=child, writeable=True)
    merged = Path(store.mount(top.id))
    try:
        (merged / "ours").write_text("x")
        assert tree(merged).items() >= expected.items()
    finally:
        store.unmount(top.id)
    assert go_tree(go, top.id) == {**expected, "ours": ("file", "x")}


def test_cs_core_layers_mount_in_go(stores: tuple[GoCLI, Store]) -> None:
    go, store = stores
    base = store.create_layer(writeable=True)
    merged = Path(store.mount(base.id))
    try:
        (merged / "keep").write_text("k")
        (merged / "gone").write_text("g")
        (merged / "d").mkdir()
        (merged / "d" / "f").write_text("f")
    finally:
        store.unmount(base.id)
    child = store.create_layer(parent=base.id, writeable=True)
    merged = Path(store.mount(child.id))
    try:
        os.unlink(merged / "gone")
        (merged / "d" / "f").unlink()
        (merged / "d").rmdir()
        (merged / "d").mkdir()
        (merged / "d" / "g").write_text("g")
    finally:
        store.unmount(child.id)
    ours = our_tree(store, child.id)
    assert "gone" not in ours and "d/f" not in ours and ours["d/g"] == ("file", "g")
    assert go_tree(go, child.id) == ours
    # Go writes into our layer; we see it
    go_write(go, child.id, {"from-go": "hello"})
    assert our_tree(store, child.id)["from-go"] == ("file", "hello")


def test_deletes_leave_no_orphans(stores: tuple[GoCLI, Store]) -> None:
    go, store = stores
    home = store.graph_root / "overlay"
    go_base = go.out("create-layer").strip().splitlines()[-1]
    ours = store.create_layer(parent=go_base)
    go_top = go.out("create-layer", ours.id).strip().splitlines()[-1]
    store.layers()
    store.delete_layer(go_top)
    go.run("delete-layer", ours.id)
    store.layers()
    store.delete_layer(go_base)
    assert os.listdir(home / "l") == []
    assert sorted(p for p in os.listdir(home) if len(p) == 64) == []
    assert go.out("layers").strip() == ""


def test_native_diff_and_changes_match_go(stores: tuple[GoCLI, Store]) -> None:
    go, store = stores
    base = go.out("create-layer").strip().splitlines()[-1]
    go_write(go, base, {"a/f": "f", "keep": "k", "x": "x"})
    child = go.out("create-layer", base).strip().splitlines()[-1]
    go_write(go, child, {"x": "y"}, delete=("keep", "a"))
    go_write(go, child, {"a/g": "g"})  # recreated directory: opaque over the lower one
    driver = store.driver
    assert ("Native Overlay Diff", "true") in driver.status()
    ours = driver.diff(child, base).read()
    assert ours == go.run("diff", child).stdout
    changes = [f'{c.kind_name} "{c.path}"' for c in driver.changes(child, base)]
    assert changes == go.out("changes", child).strip().splitlines()
    assert changes == ['Delete "/a"', 'Add "/a/g"', 'Delete "/keep"', 'Modify "/x"']
    # and the other way round: a layer we wrote, diffed by Go
    store.layers()
    top = store.create_layer(parent=child, writeable=True)
    merged = Path(store.mount(top.id))
    try:
        (merged / "x").unlink()
        (merged / "new").write_text("n")
    finally:
        store.unmount(top.id)
    assert driver.diff(top.id, child).read() == go.run("diff", top.id).stdout


def test_images_and_containers_both_ways(stores: tuple[GoCLI, Store]) -> None:
    go, store = stores
    home = store.graph_root / "overlay"
    # Go's image and container, used by us
    go_layer = go.out("create-layer").strip().splitlines()[-1]
    go_write(go, go_layer, {"bin/tool": "go"})
    go.run("create-image", "-n", "go-image", go_layer)
    go_ctr = go.out("create-container", "go-image").strip().splitlines()[-1]
    go_write(go, go_ctr, {"run/state": "go-ctr"})
    store.images()
    ctr = store.container(go_ctr)
    assert [i.names for i in store.images()] == [["go-image"]]
    merged = Path(store.mount(go_ctr))
    try:
        assert tree(merged) == {"bin": ("dir", "0o755"), "bin/tool": ("file", "go"),
                                "run": ("dir", "0o755"), "run/state": ("file", "go-ctr")}
        (merged / "run" / "ours").write_text("x")
    finally:
        store.unmount(go_ctr)
    assert go_tree(go, go_ctr)["run/ours"] == ("file", "x")
    # our image and container, used by Go
    img = store.create_image(names=["our-image"], layer=go_layer)
    our_ctr = store.create_container(image=img.id)
    merged = Path(store.mount(our_ctr.id))
    try:
        (merged / "mine").write_text("m")
    finally:
        store.unmount(our_ctr.id)
    assert "our-image" in go.out("images")
    assert our_ctr.id in go.out("containers")
    assert go_tree(go, our_ctr.id)["mine"] == ("file", "m")
    # each deletes the other's
    go.run("delete-container", our_ctr.id)
    store.containers()
    store.delete_container(ctr.id)
    go.run("delete-image", img.id)
    store.images()
    store.delete_image("go-image")
    store.layers()
    assert go.out("containers").strip() == "" and go.out("images").strip() == ""
    assert store.layers() == []
    assert os.listdir(home / "l") == []
    assert [p for p in os.listdir(home) if len(p) == 64] == []
