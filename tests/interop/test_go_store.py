"""Interop with the Go CLI on one store (vfs and overlay), both directions, and concurrently."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from cs_core.store import ContainerOptions, ImageOptions, Store
from cs_core.testing.gocli import GoCLI

pytestmark = pytest.mark.interop


def _records(path: Path) -> list[dict[str, object]]:
    return json.loads(path.read_text())


def test_go_reads_what_we_wrote(vfs_store: Store, go_cli: GoCLI) -> None:
    s = vfs_store
    base = s.create_layer(names=["base"])
    root = Path(s.mount(base.id))
    (root / "hello.txt").write_text("from python\n")
    s.unmount(base.id)
    image = s.create_image(names=["py/img:1"], layer=base.id, metadata="image-meta",
                           options=ImageOptions(big_data={"manifest": b'{"m":1}', "Weird Key/1": b"w"}))
    container = s.create_container(names=["py-ctr"], image=image.id, metadata="ctr-meta",
                                   options=ContainerOptions(big_data={"state": b"running"}))

    # Go lists exactly our records (its --json is the record JSON).
    layers_file = _records(s.graph_root / f"{s.driver_name}-layers" / "layers.json")
    assert sorted(x["id"] for x in go_cli.json("layers")) == sorted(x["id"] for x in layers_file)
    assert go_cli.json("images") == _records(s.graph_root / f"{s.driver_name}-images" / "images.json")
    containers_file = s.graph_root / f"{s.driver_name}-containers" / "containers.json"
    assert go_cli.json("containers") == _records(containers_file)
    assert go_cli.out("get-image-data", "py/img:1", "Weird Key/1") == "w"
    assert go_cli.out("get-container-data", "py-ctr", "state") == "running"
    assert go_cli.out("metadata", "-q", "py/img:1").strip() == "image-meta"
    mnt = go_cli.out("mount", "py-ctr").strip()
    assert (Path(mnt) / "hello.txt").read_text() == "from python\n"
    go_cli.run("unmount", "py-ctr")

    # Go writes; we see it (reload on token change, same Store object).
    go_cli.run("add-names", "-n", "go-name", "py/img:1")
    assert "go-name" in s.image(image.id).names
    new_layer = go_cli.out("create-layer", "-n", "go-layer", base.id).split()[0]
    assert s.layer("go-layer").id == new_layer
    go_cli.run("set-container-data", "-f", "/dev/null", "py-ctr", "empty")
    assert s.container_big_data(container.id, "empty") == b""
    go_cli.run("delete-container", "py-ctr")
    assert s.containers() == []


def test_we_read_what_go_wrote(make_store: Callable[[], Store], go_cli: GoCLI, tmp_path: Path) -> None:
    layer = go_cli.out("create-layer", "-n", "golayer").split()[0]
    mnt = go_cli.out("mount", layer).strip()
    (Path(mnt) / "data").write_text("from go\n")
    go_cli.run("unmount", layer)
    image = go_cli.out("create-image", "-n", "go/img", "-m", "gometa", layer).split()[0]
    (tmp_path / "manifest").write_text('{"schemaVersion":2}')
    go_cli.run("set-image-data", "-f", str(tmp_path / "manifest"), image, "manifest")
    ctr = go_cli.out("create-container", "-n", "goctr", image).split()[0]

    s = make_store()
    assert s.layer("golayer").id == layer
    img = s.image("go/img")
    assert img.id == image and img.metadata == "gometa"
    assert s.image_big_data(image, "manifest") == b'{"schemaVersion":2}'
    assert img.digest.startswith("sha256:")  # recomputed from the manifest as Go does
    assert s.container("goctr").id == ctr
    root = Path(s.mount("goctr"))
    assert (root / "data").read_text() == "from go\n"
    (root / "written-by-python").write_text("x")
    s.unmount("goctr")

    # Our writes are visible to Go, and Go's files are unchanged by our reads.
    s.add_names("go/img", ["py-name"])
    assert "py-name" in go_cli.json("image", "go/img")[0]["names"]
    mnt = go_cli.out("mount", "goctr").strip()
    assert (Path(mnt) / "written-by-python").read_text() == "x"
    go_cli.run("unmount", "goctr")
    s.delete_container("goctr")
    s.delete_image("go/img")
    # Go prints null for an empty list.
    assert not go_cli.json("layers")
    assert not go_cli.json("images")


def test_concurrent_creates_with_go_lose_nothing(
    store_roots: tuple[Path, Path], go_cli: GoCLI, make_store: Callable[[], Store], driver_name: str
) -> None:
    graph, run = store_roots
    go_cli.run("layers")  # initialise the store
    count = 25
    code = textwrap.dedent(f"""
        from cs_core.store import open_store
        s = open_store(graph_root={str(graph)!r}, run_root={str(run)!r}, driver_name={driver_name!r})
        for i in range({count}):
            l = s.create_layer(names=[f"py-{{i}}"])
            s.create_image(names=[f"py-img-{{i}}"], layer=l.id)
    """)
    py = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE)
    go_ids = []
    for i in range(count):
        go_ids.append(go_cli.out("create-layer", "-n", f"go-{i}").split()[0])
        go_cli.run("create-image", "-n", f"go-img-{i}", go_ids[-1])
    _, err = py.communicate(timeout=300)
    assert py.returncode == 0, err.decode()
    names = {n for layer in go_cli.json("layers") for n in layer.get("names", [])}
    assert names == {f"py-{i}" for i in range(count)} | {f"go-{i}" for i in range(count)}
    s = make_store()
    assert len(s.images()) == 2 * count
    assert len(s.layers()) == 2 * count
