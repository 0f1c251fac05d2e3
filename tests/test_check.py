"""check/repair on real stores: each kind of damage is found with Go's wording and repaired.

Every test builds a healthy store (layers from real tar streams, an image, a container), checks
that it is clean, damages one thing the way a crash, a full disk or a careless hand would, and
asserts that ``check`` reports exactly that damage and that ``repair`` leaves a clean store.
"""

from __future__ import annotations

import datetime as _dt
import io
import json
import os
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest

from cs_core.drivers.base import MountOpts
from cs_core.store import ImageOptions, Store
from cs_core.store.check import CheckOptions, CheckReport, RepairOptions
from cs_core.testing.tars import layer_tar

EVERYTHING = CheckOptions.everything()
MTIME = 1_700_000_000


def make_tar(entries: list[tuple[str, bytes | None]]) -> bytes:
    """A layer tar: (name, data) for files, (name/, None) for directories."""
    return layer_tar(entries, uid=1000, gid=100)


@attrs.define
class World:
    store: Store
    base: str
    top: str
    image: str
    container: str
    container_layer: str


@pytest.fixture
def world(make_store: Callable[[], Store]) -> World:
    store = make_store()
    base = store.put_layer(diff=io.BytesIO(make_tar([
        ("etc/", None), ("etc/os-release", b"NAME=test\n"), ("bin/", None), ("bin/sh", b"#!" * 500),
    ])))
    top = store.put_layer(parent=base.id, diff=io.BytesIO(make_tar([
        ("etc/", None), ("etc/hostname", b"box\n"), ("etc/.wh.os-release", b""),
    ])))
    store.set_layer_big_data(top.id, "annotations", b"{}")
    image = store.create_image(names=["test:latest"], layer=top.id,
                               options=ImageOptions(big_data={"manifest": b'{"a":1}'}))
    container = store.create_container(names=["box"], image=image.id)
    store.set_container_big_data(container.id, "config.json", b'{"hostname":"box"}')
    return World(store, base.id, top.id, image.id, container.id, container.layer)


def flat(report: CheckReport) -> list[str]:
    return report.lines()


def assert_clean(store: Store) -> None:
    report = store.check(EVERYTHING)
    assert report.empty(), flat(report)


def repair_and_verify(world: World, report: CheckReport, remove_containers: bool = True) -> None:
    errors = world.store.repair(report, RepairOptions(remove_containers=remove_containers))
    assert errors == []
    assert_clean(world.store)


def test_healthy_store_is_clean(world: World) -> None:
    assert_clean(world.store)
    quick = world.store.check(CheckOptions.most())
    assert quick.empty()
    assert quick.to_go_json() == {"Layers": {}, "ROLayers": {}, "Images": {}, "ROImages": {},
                                  "Containers": {}}


def test_modified_layer_file_is_incorrect_digest(world: World) -> None:
    # Change a byte of a file in the base layer's own tree (same size: only the digest sees it).
    getter_root = Path(world.store.driver.get(world.base, _rw()))
    try:
        target = getter_root / "bin" / "sh"
        os.chmod(target, 0o644)
        target.write_bytes(b"#?" * 500)
    finally:
        world.store.driver.put(world.base)
    report = world.store.check(EVERYTHING)
    # Go's wording: tar-split's CRC of the file fails before the digest can be compared.
    assert [str(e) for e in report.layers[world.base]] == [
        f'layer {world.base}: file integrity checksum failed for "bin/sh"'
    ]
    # The damage travels to the image and the container built on it.
    assert world.image in report.images
    assert world.container in report.containers
    repair_and_verify(world, report)
    assert world.store.images() == []
    assert world.store.containers() == []
    assert world.store.layers() == []


def test_extra_file_is_content_modified(world: World) -> None:
    root = Path(world.store.driver.get(world.top, _rw()))
    try:
        (root / "etc" / "intruder").write_bytes(b"x")
    finally:
        world.store.driver.put(world.top)
    quick = world.store.check(CheckOptions.most())
    assert quick.empty()  # tar-split reassembly cannot see an extra file: only the content scan
    report = world.store.check(EVERYTHING)
    assert [str(e) for e in report.layers[world.top]] == [
        f"layer {world.top}: +/etc/intruder, layer content modified"
    ]
    repair_and_verify(world, report)


def test_changed_mode_is_content_modified(world: World) -> None:
    root = Path(world.store.driver.get(world.top, _rw()))
    try:
        os.chmod(root / "etc" / "hostname", 0o600)
    finally:
        world.store.driver.put(world.top)
    report = world.store.check(EVERYTHING)
    assert [str(e) for e in report.layers[world.top]] == [
        f"layer {world.top}: /etc/hostname(mode:0644￫0600), layer content modified"
    ]
    repair_and_verify(world, report)


def test_missing_layer_data_item(world: World) -> None:
    (world.store.layer_store.data_path(world.top, "annotations")).unlink()
    report = world.store.check(EVERYTHING)
    assert [str(e) for e in report.layers[world.top]] == [
        f'layer {world.top}: data item "annotations": layer data item is missing'
    ]
    repair_and_verify(world, report)


def test_missing_and_resized_image_data(world: World) -> None:
    (world.store.image_store.data_path(world.image, "manifest")).write_bytes(b"{}")
    report = world.store.check(EVERYTHING)
    assert [str(e) for e in report.images[world.image]] == [
        f'image {world.image}: data item "manifest": image data item has incorrect size'
    ]
    (world.store.image_store.data_path(world.image, "manifest")).unlink()
    report = world.store.check(EVERYTHING)
    assert [str(e) for e in report.images[world.image]] == [
        f'image {world.image}: data item "manifest": image data item is missing'
    ]
    # Without -f the container stays, so the image it uses cannot go either (as in Go).
    failures = world.store.repair(report, RepairOptions(remove_containers=False))
    assert [str(e) for e in failures] == [
        f"deleting image {world.image}: image used by {world.container}: "
        f"image is in use by a container"
    ]
    assert world.store.check(EVERYTHING).images
    repair_and_verify(world, report)
    assert world.store.images() == [] and world.store.containers() == []


def test_container_data_missing_and_resized(world: World) -> None:
    cs = world.store.container_store
    cs.data_path(world.container, "config.json").write_bytes(b"{}")
    report = world.store.check(EVERYTHING)
    assert [str(e) for e in report.containers[world.container]] == [
        f'container {world.container}: data item "config.json": container data item has '
        f"incorrect size"
    ]
    cs.data_path(world.container, "config.json").unlink()
    report = world.store.check(EVERYTHING)
    assert [str(e) for e in report.containers[world.container]] == [
        f'container {world.container}: data item "config.json": container data item is missing'
    ]
    repair_and_verify(world, report)
    assert world.store.containers() == []
    assert [i.id for i in world.store.images()] == [world.image]


def test_unreferenced_layer_respects_maximum_age(world: World) -> None:
    orphan = world.store.create_layer()
    assert_clean(world.store)  # young: maybe an image is being written right now
    report = world.store.check(attrs.evolve(
        EVERYTHING, layer_unreferenced_maximum_age=_dt.timedelta(0)))
    assert [str(e) for e in report.layers[orphan.id]] == [
        f"layer {orphan.id}: layer not referenced by any images or containers"
    ]
    assert set(report.layers) == {orphan.id}
    repair_and_verify(world, report)
    assert orphan.id not in {layer.id for layer in world.store.layers()}


def test_driver_layer_without_record_is_unaccounted(world: World) -> None:
    stray = world.store.create_storage_layer()
    report = world.store.check(EVERYTHING)
    assert [str(e) for e in report.layers[stray]] == [
        f"layer {stray}: layer in lower level storage driver not accounted for"
    ]
    repair_and_verify(world, report)
    assert stray not in world.store.storage_layers()


def test_image_top_layer_missing(world: World) -> None:
    ist = world.store.image_store
    with ist.writing():
        ist.by_id[world.image].top_layer = "f" * 64
        ist.save()
    report = world.store.check(EVERYTHING)
    assert [str(e) for e in report.images[world.image]] == [
        f"image {world.image}: layer {'f' * 64}: image layer is missing"
    ]
    # The image's real layers lost their only reference, but they are young.
    repair_and_verify(world, report)


def test_layer_parent_missing(world: World) -> None:
    ls = world.store.layer_store
    orphan_parent = "e" * 64
    with ls.writing():
        ls.by_id[world.base].parent = orphan_parent
        ls.save()
    report = world.store.check(CheckOptions.most())
    assert f"layer {orphan_parent}: layer is missing" in [
        str(e) for e in report.layers[world.base]
    ]
    repair_and_verify(world, report)


def test_deleted_layer_directory_is_unmountable(world: World) -> None:
    from cs_core.atomic import remove_tree

    remove_tree(world.store.driver.layer_dir(world.base))
    report = world.store.check(EVERYTHING)
    assert world.base in report.layers
    assert world.image in report.images
    repair_and_verify(world, report)


def _rw() -> MountOpts:
    """A writable mount of a layer: the tests damage layers through it."""
    return MountOpts()


# -- the `check` command ------------------------------------------------------------------------


@pytest.fixture
def run_check(world: World, capfd: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """Run ``containers-storage ... check ARGS`` in-process on the world's store."""
    from cs_core.cli import main as cli_main

    store = world.store

    def run(*args: str) -> tuple[int, str, str]:
        capfd.readouterr()
        code = cli_main.run(["-g", str(store.graph_root), "-R", str(store.run_root),
                             "-s", store.driver_name, "check", *args])
        captured = capfd.readouterr()
        return code, captured.out, captured.err

    return run


def test_cli_check_clean_damaged_and_repaired(world: World,
                                              run_check: Callable[..., tuple[int, str, str]]) -> None:
    assert run_check() == (0, "", "")
    code, stdout, _ = run_check("--json")
    assert code == 0
    assert json.loads(stdout) == {"Layers": {}, "ROLayers": {}, "Images": {}, "ROImages": {},
                                  "Containers": {}}
    stray = world.store.create_storage_layer()
    code, stdout, stderr = run_check("-q")
    assert code == 1
    assert stdout == (f"layer {stray}:\n layer {stray}: layer in lower level storage driver "
                      f"not accounted for\n")
    assert stderr == ("1 layer errors, 0 read-only layer errors, 0 image errors, "
                      "0 read-only image errors, 0 container errors\n")
    code, stdout, _ = run_check("-j")
    assert code == 1 and json.loads(stdout)["Layers"] == {stray: [{}]}
    assert run_check("-r")[0] == 0
    assert run_check() == (0, "", "")


def test_cli_check_max_age_and_force(world: World,
                                     run_check: Callable[..., tuple[int, str, str]]) -> None:
    orphan = world.store.create_layer()
    assert run_check()[0] == 0
    code, stdout, _ = run_check("-m", "0s")
    assert code == 1 and f"layer {orphan.id}: layer not referenced" in stdout
    assert run_check("--max=1h30m")[0] == 0
    code, _, stderr = run_check("-m", "soon")
    assert (code, stderr) == (1, 'time: invalid duration "soon"\n')
    # A damaged container survives -r (exit 1, Go's summary) and goes with -f.
    world.store.container_store.data_path(world.container, "config.json").unlink()
    code, _, stderr = run_check("-r")
    assert code == 1
    assert stderr == "0 read-only layer errors, 0 read-only image errors, 1 container errors\n"
    assert run_check("-f")[0] == 0
    assert world.store.containers() == []
    assert run_check() == (0, "", "")


def test_read_only_store_damage_is_reported_never_repaired(
        tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    from cs_core.cli import main as cli_main
    from cs_core.store import open_store

    ro = open_store(graph_root=str(tmp_path / "ro"), run_root=str(tmp_path / "ro-run"),
                    driver_name="vfs")
    layer = ro.create_layer(names=["ro-layer"])
    ro.set_layer_big_data(layer.id, "notes", b"kept")
    image = ro.create_image(names=["ro-image"], layer=layer.id,
                            options=ImageOptions(big_data={"manifest": b"{}"}))
    ro.shutdown(True)
    graph, run = tmp_path / "graph", tmp_path / "run"
    opt = f"vfs.imagestore={tmp_path / 'ro'}"
    store = open_store(graph_root=str(graph), run_root=str(run), driver_name="vfs",
                       driver_options=[opt])
    assert store.check(EVERYTHING).empty()
    (tmp_path / "ro" / "vfs-layers" / layer.id / "notes").unlink()
    (tmp_path / "ro" / "vfs-images" / image.id / "manifest").write_bytes(b"{ }")
    report = store.check(EVERYTHING)
    assert not report.layers and not report.images
    assert [str(e) for e in report.ro_layers[layer.id]] == [
        f'read-only layer {layer.id}: data item "notes": layer data item is missing'
    ]
    assert [str(e) for e in report.ro_images[image.id]] == [
        f'read-only image {image.id}: data item "manifest": image data item has incorrect size',
        f'read-only layer {layer.id}: data item "notes": layer data item is missing',
    ]
    ro_files = sorted(p for p in (tmp_path / "ro").rglob("*") if p.is_file())
    assert store.repair(report) == []
    assert sorted(p for p in (tmp_path / "ro").rglob("*") if p.is_file()) == ro_files
    assert store.image("ro-image").id == image.id
    # The CLI: nothing it may repair, so -r still exits 1 with Go's read-only summary.
    capfd.readouterr()
    code = cli_main.run(["-g", str(graph), "-R", str(run), "-s", "vfs", "--storage-opt", opt,
                         "check", "-r"])
    _out, err = capfd.readouterr()
    assert code == 1
    assert err.endswith("1 read-only layer errors, 1 read-only image errors, "
                        "0 container errors\n")


def test_tar_split_that_rebuilds_other_bytes_is_incorrect_digest(world: World) -> None:
    """Bytes after the end-of-archive marker: every file reads back fine, the digest does not."""
    import base64
    import gzip

    path = world.store.layer_store.tar_split_path(world.top)
    lines = gzip.decompress(path.read_bytes()).splitlines()
    last = max(i for i, line in enumerate(lines) if json.loads(line).get("payload"))
    entry = json.loads(lines[last])
    payload = bytearray(base64.b64decode(entry["payload"]))
    payload[-1] ^= 0x01
    entry["payload"] = base64.b64encode(bytes(payload)).decode()
    lines[last] = json.dumps(entry, separators=(",", ":")).encode()
    path.write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))
    report = world.store.check(EVERYTHING)
    assert [str(e) for e in report.layers[world.top]] == [
        f"layer {world.top}: layer content incorrect digest"
    ]
    repair_and_verify(world, report)


def test_store_written_by_go_checks_clean(tmp_path: Path, make_store: Callable[[], Store],
                                          go_cli: Any) -> None:
    """Go's tar-split, layout and records: our check finds nothing wrong, and finds Go's
    layers' damage just the same."""
    src = tmp_path / "src"
    (src / "etc").mkdir(parents=True)
    (src / "usr" / "bin").mkdir(parents=True)
    (src / "etc" / "hosts").write_text("127.0.0.1 localhost\n")
    (src / "usr" / "bin" / "tool").write_bytes(os.urandom(100_000))
    os.symlink("tool", src / "usr" / "bin" / "link")
    os.link(src / "etc" / "hosts", src / "etc" / "hosts2")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(src, arcname=".")
    layer = go_cli.run("import-layer", "-n", "go-base", input=buf.getvalue()).stdout.split()[0]
    go_cli.run("create-image", "-n", "go-img", layer.decode())
    go_cli.run("create-container", "-n", "go-ctr", "go-img")
    store = make_store()
    assert store.check(EVERYTHING).empty(), store.check(EVERYTHING).lines()
    root = Path(store.driver.get(layer.decode(), _rw()))
    try:
        os.chmod(root / "usr" / "bin" / "tool", 0o700)
    finally:
        store.driver.put(layer.decode())
    report = store.check(EVERYTHING)
    assert [str(e) for e in report.layers[layer.decode()]] == [
        f"layer {layer.decode()}: /usr/bin/tool(mode:0644￫0700), layer content modified"
    ]
