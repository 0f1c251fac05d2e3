"""Containers with ID maps on drivers that re-own files (vfs is covered in test_store_modes.py).

The image layer is applied with one mapping and the container asks for another, so the
driver has to re-own the container's view: host IDs on disk, container IDs in the diff.
btrfs always works this way; overlay only with ID-mapped mounts disabled
(``_CONTAINERS_OVERLAY_DISABLE_IDMAP=yes``): otherwise it maps at mount time
(plugins/overlay/tests/test_idmapped_mounts.py).
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from cs_core.model import IDMap
from cs_core.store import ContainerOptions, LayerOptions, open_store
from cs_core.testing import go_cli_path, require_privileged
from cs_core.testing.loopfs import loop_filesystem
from cs_core.testing.owners import owners_in_diff, owners_through_mount
from cs_core.testing.tars import owned_file_tar


@pytest.fixture(params=["overlay", "btrfs"])
def store_root(request: pytest.FixtureRequest, tmp_path: Path,
               monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Path]]:
    require_privileged("mounts and chown to other users need root")
    with ExitStack() as stack:
        if request.param == "btrfs":
            root = stack.enter_context(loop_filesystem("btrfs", "1G", workdir=tmp_path))
        else:
            monkeypatch.setenv("_CONTAINERS_OVERLAY_DISABLE_IDMAP", "yes")
            root = tmp_path
        yield request.param, root


def test_container_with_maps_is_owned_by_its_host_ids(store_root: tuple[str, Path]) -> None:
    driver, root = store_root
    store = open_store(graph_root=str(root / "g"), run_root=str(root / "r"), driver_name=driver)
    try:
        image_maps = [IDMap(0, 100000, 65536)]
        layer = store.put_layer(options=LayerOptions(uid_map=image_maps, gid_map=image_maps),
                                diff=io.BytesIO(owned_file_tar(10, 20)))
        image = store.create_image(layer=layer.id)
        other = [IDMap(0, 200000, 65536)]
        container = store.create_container(image=image.id,
                                           options=ContainerOptions(uid_map=other, gid_map=other))
        assert store.container(container.id).uid_map == other
        merged = Path(store.mount(container.id))
        try:
            st = os.lstat(merged / "owned")
            assert (st.st_uid, st.st_gid) == (200010, 200020)
            assert (merged / "owned").read_text() == "hi"
            # A file the container creates as its uid 5 / gid 6.
            (merged / "new").write_text("n")
            os.lchown(merged / "new", 200005, 200006)
        finally:
            store.unmount(container.id)
        # The image layer keeps its own owners.
        assert owners_through_mount(store, layer.id, "owned") == (100010, 100020)
        # The container's diff speaks container IDs, whatever the host ownership.
        assert owners_in_diff(store, container.layer, "new") == (5, 6)
    finally:
        store.shutdown(force=True)


def test_containers_share_one_mapped_copy_of_the_top_layer(tmp_path: Path) -> None:
    require_privileged("chown to other users needs root")
    go = go_cli_path()
    graph, run = tmp_path / "g", tmp_path / "r"
    store = open_store(graph_root=str(graph), run_root=str(run), driver_name="vfs")
    try:
        base = store.create_layer()
        top = store.put_layer(parent=base.id, diff=io.BytesIO(owned_file_tar(10, 20)))
        image = store.create_image(layer=top.id)
        maps = [IDMap(0, 300000, 65536)]
        opts = ContainerOptions(uid_map=maps, gid_map=maps)
        first = store.create_container(image=image.id, options=opts)
        mapped = store.image(image.id).mapped_top_layers
        assert len(mapped) == 1
        copy = store.layer(mapped[0])
        assert copy.parent == base.id and copy.uid_map == maps and copy.gid_map == maps
        assert store.layer(first.layer).parent == copy.id
        assert owners_through_mount(store, copy.id, "owned") == (300010, 300020)
        # Same maps: the copy is reused; no maps: the original top layer.
        second = store.create_container(image=image.id, options=opts)
        plain = store.create_container(image=image.id)
        assert store.layer(second.layer).parent == copy.id
        assert store.layer(plain.layer).parent == top.id
        assert store.image(image.id).mapped_top_layers == [copy.id]
        store.shutdown()
        # Go reads the image record and lists the copy as another top layer.
        out = subprocess.run(
            [go, "-g", str(graph), "-R", str(run), "-s", "vfs", "image", image.id],
            capture_output=True, text=True, check=True).stdout
        assert f"Top Layer: {top.id}\n" in out and f"Top Layer: {copy.id}\n" in out
        store = open_store(graph_root=str(graph), run_root=str(run), driver_name="vfs")
        for container in (first, second, plain):
            store.delete_container(container.id)
        store.delete_image(image.id)
        remaining = {layer.id for layer in store.layers()}
        assert copy.id not in remaining and top.id not in remaining
    finally:
        store.shutdown(force=True)


def _both_clis(graph: Path, run: Path, *args: str) -> tuple[list[str], list[str]]:
    outs = []
    for prog in ([go_cli_path()], [sys.executable, "-m", "cs_core"]):
        done = subprocess.run([*prog, "-g", str(graph), "-R", str(run), "-s", "vfs", *args],
                              capture_output=True, text=True)
        outs.append([str(done.returncode), done.stdout, done.stderr])
    return outs[0], outs[1]


def test_parent_owners_match_go(tmp_path: Path) -> None:
    require_privileged("chown and mounts need root")
    go_cli_path()
    # The store sits under a directory owned by IDs outside the maps: those are reported.
    home = tmp_path / "home"
    home.mkdir()
    os.chown(home, 4242, 4343)
    graph, run = home / "g", home / "r"
    store = open_store(graph_root=str(graph), run_root=str(run), driver_name="vfs")
    try:
        maps = [IDMap(0, 100000, 65536)]
        layer = store.create_layer(options=LayerOptions(uid_map=maps, gid_map=maps))
        image = store.create_image(layer=store.create_layer().id)
        container = store.create_container(image=image.id,
                                           options=ContainerOptions(uid_map=maps, gid_map=maps))
        store.mount(layer.id)
        store.mount(container.id)
        for args in (["layer-parent-owners", layer.id], ["layer-parent-owners", "-j", layer.id],
                     ["container-parent-owners", container.id],
                     ["container-parent-owners", "-j", container.id]):
            go, ours = _both_clis(graph, run, *args)
            assert ours == go, args
        go, _ = _both_clis(graph, run, "layer-parent-owners", "-j", layer.id)
        assert "4242" in go[1] and "4343" in go[1]
        store.unmount(layer.id)
        store.unmount(container.id)
    finally:
        store.shutdown(force=True)
