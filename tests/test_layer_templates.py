"""Layers created from a template: the ID-mapped copy of an image's top layer.

The copy is made by the driver (vfs: a copy of the template's tree, btrfs: a snapshot of its
subvolume, others: Go's naive diff + apply) and re-owned for the container's maps; its record
and tar-split come from the template, so its diff is the template's, byte for byte.
"""

from __future__ import annotations

import io
import json
import os
import signal
import stat
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from cs_core.drivers.base import CreateOpts, GraphDriver, MountOpts
from cs_core.model import IDMap, Layer
from cs_core.store import ContainerOptions, Store, open_store
from cs_core.testing import go_cli_path, require_privileged
from cs_core.testing.gocli import GoCLI
from cs_core.testing.loopfs import loop_filesystem

MAPS = [IDMap(0, 100000, 65536)]
MTIME = 1_700_000_000
REPO = Path(__file__).resolve().parents[1]


def _tar(build: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in build:
            info.mtime = info.mtime or MTIME
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buf.getvalue()


def _entry(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", uid: int = 0, gid: int = 0,
           mode: int = 0o644, **extra: object) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type, info.uid, info.gid, info.mode = kind, uid, gid, mode
    for key, value in extra.items():
        setattr(info, key, value)
    if kind == tarfile.REGTYPE:
        info.size = len(data)
    return info, data


BASE_TAR = _tar([_entry("base", data=b"b"), _entry("gone", data=b"g")])
TOP_TAR = _tar([
    _entry("d", tarfile.DIRTYPE, uid=5, gid=6, mode=0o750),
    _entry("d/f", data=b"hello", uid=10, gid=20, mode=0o755),
    _entry("d/link", tarfile.LNKTYPE, uid=10, gid=20, mode=0o755, linkname="d/f"),
    _entry("d/sym", tarfile.SYMTYPE, uid=7, gid=8, mode=0o777, linkname="f"),
    _entry("suid", data=b"s", uid=3, gid=3, mode=0o4755),
    _entry("null", tarfile.CHRTYPE, uid=4, gid=4, mode=0o600, devmajor=1, devminor=3),
    _entry("x", data=b"xyz", uid=1, gid=2, pax_headers={"SCHILY.xattr.user.k": "v"}),
    _entry(".wh.gone"),
])


@pytest.fixture(params=["vfs", "btrfs", "overlay"])
def root(request: pytest.FixtureRequest, tmp_path: Path,
         monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Path]]:
    require_privileged("chown to other users (and btrfs loop mounts) need root")
    if request.param == "overlay":
        # Where the kernel has ID-mapped mounts overlay needs no copy at all (that is tested in
        # plugins/overlay/tests/test_idmapped_mounts.py); turned off, it copies like the others.
        monkeypatch.setenv("_CONTAINERS_OVERLAY_DISABLE_IDMAP", "yes")
    with ExitStack() as stack:
        if request.param == "btrfs":
            yield "btrfs", stack.enter_context(loop_filesystem("btrfs", "1G", workdir=tmp_path))
        else:
            yield request.param, tmp_path


def _image(store: Store) -> tuple[Layer, Layer, str]:
    base = store.put_layer(diff=io.BytesIO(BASE_TAR))
    top = store.put_layer(parent=base.id, diff=io.BytesIO(TOP_TAR))
    return base, top, store.create_image(layer=top.id).id


def _diff(store: Store, layer: str) -> bytes:
    out = io.BytesIO()
    store.diff(None, layer, out)
    return out.getvalue()


def _tree(path: Path) -> dict[str, tuple[int, ...]]:
    """Everything but owners that a copy must keep, per path."""
    found: dict[str, tuple[int, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            found[os.path.relpath(full, path)] = (
                st.st_mode, st.st_nlink, st.st_mtime_ns, st.st_rdev, st.st_size)
    return found


def _subvol_uuids(path: Path) -> tuple[bytes, bytes]:
    from cs_btrfs import ioctl

    with ioctl.open_dir(path) as fd:
        info = ioctl.subvol_info(fd)
    return info.uuid, info.parent_uuid


def test_mapped_copy_has_the_template_contents_owned_for_the_new_maps(root: tuple[str, Path]) -> None:
    go_cli_path()
    driver, where = root
    store = open_store(graph_root=str(where / "g"), run_root=str(where / "r"), driver_name=driver)
    try:
        base, top, image = _image(store)
        container = store.create_container(
            image=image, options=ContainerOptions(uid_map=MAPS, gid_map=MAPS))
        [copy_id] = store.image(image).mapped_top_layers
        copy, template = store.layer(copy_id), store.layer(top.id)
        assert store.layer(container.layer).parent == copy.id
        assert copy.parent == base.id and copy.uid_map == MAPS and copy.gid_map == MAPS
        for field in ("compressed_digest", "compressed_size", "uncompressed_digest",
                      "uncompressed_size", "compression", "uidset", "gidset", "metadata"):
            assert getattr(copy, field) == getattr(template, field), field
        assert _diff(store, copy.id) == _diff(store, top.id)
        copy_root, top_root = Path(store.mount(copy.id)), Path(store.mount(top.id))
        try:
            assert _tree(copy_root) == _tree(top_root)
            assert not (copy_root / "gone").exists()
            owners = {name: (os.lstat(copy_root / name).st_uid, os.lstat(copy_root / name).st_gid)
                      for name in ("base", "d", "d/f", "d/sym", "suid", "null", "x")}
            assert owners == {"base": (100000, 100000), "d": (100005, 100006),
                              "d/f": (100010, 100020), "d/sym": (100007, 100008),
                              "suid": (100003, 100003), "null": (100004, 100004),
                              "x": (100001, 100002)}
            # Re-owning must not drop the setuid bit (chown clears it) nor split hard links.
            assert stat.S_IMODE(os.lstat(copy_root / "suid").st_mode) == 0o4755
            assert os.lstat(copy_root / "d/f").st_ino == os.lstat(copy_root / "d/link").st_ino
            assert os.getxattr(copy_root / "x", "user.k") == b"v"
            assert (copy_root / "d/f").read_bytes() == b"hello"
            assert os.lstat(top_root / "d/f").st_uid == 10  # the template keeps its owners
            if driver == "btrfs":
                # A snapshot of the template, not a new subvolume filled with copies.
                assert _subvol_uuids(copy_root)[1] == _subvol_uuids(top_root)[0]
        finally:
            store.unmount(copy.id)
            store.unmount(top.id)
        expected = _diff(store, top.id)
        store.shutdown(force=True)
        # Go 1.43 reads the copy we made: listed, and diffed byte for byte.
        go = GoCLI(where / "g", where / "r", driver)
        try:
            assert copy.id in go.out("layers")
            assert go.run("diff", copy.id).stdout == expected
        finally:
            go.run("shutdown", "-f", check=False)  # Go's overlay leaves its home mount otherwise
    finally:
        store.shutdown(force=True)


def test_naive_default_applies_the_template_diff_on_the_parent(tmp_path: Path) -> None:
    """The default every driver inherits (overlay uses it): deletions and owners come across."""
    require_privileged("chown to other users needs root")
    store = open_store(graph_root=str(tmp_path / "g"), run_root=str(tmp_path / "r"),
                       driver_name="vfs")
    try:
        base, top, _ = _image(store)
        driver = store.driver
        GraphDriver.create_from_template(driver, "naive", top.id, ([], []), base.id, ([], []),
                                         CreateOpts(), False)
        try:
            copy_root = driver.get("naive", MountOpts())
            top_root = driver.get(top.id, MountOpts())
            assert _tree(copy_root) == _tree(top_root)
            assert os.lstat(copy_root / "d/f").st_uid == 10
            assert os.getxattr(copy_root / "x", "user.k") == b"v"
        finally:
            driver.remove("naive")
    finally:
        store.shutdown(force=True)


def _record(layer: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in layer.items() if k not in ("id", "created")}


def test_our_copy_matches_gos_and_go_reads_it(tmp_path: Path) -> None:
    require_privileged("chown to other users needs root")
    go_cli_path()
    ours_g, ours_r, go_g, go_r = (tmp_path / n for n in ("g", "r", "go-g", "go-r"))
    (tmp_path / "base.tar").write_bytes(BASE_TAR)
    (tmp_path / "top.tar").write_bytes(TOP_TAR)
    go = GoCLI(go_g, go_r)
    go.run("create-layer", "--id", "base0")
    go.run("applydiff", "--file", str(tmp_path / "base.tar"), "base0")
    go.run("create-layer", "--id", "top0", "base0")
    go.run("applydiff", "--file", str(tmp_path / "top.tar"), "top0")
    go.run("create-image", "--id", "img0", "top0")
    go.run("create-container", "--uidmap", "0:100000:65536", "--gidmap", "0:100000:65536", "img0")
    [go_copy] = [la for la in json.loads((go_g / "vfs-layers/layers.json").read_bytes())
                 if la.get("uidmap") and la.get("diff-digest")]

    store = open_store(graph_root=str(ours_g), run_root=str(ours_r), driver_name="vfs")
    try:
        _, top, image = _image(store)
        store.create_container(image=image, options=ContainerOptions(uid_map=MAPS, gid_map=MAPS))
        [copy_id] = store.image(image).mapped_top_layers
    finally:
        store.shutdown(force=True)
    [our_copy] = [la for la in json.loads((ours_g / "vfs-layers/layers.json").read_bytes())
                  if la["id"] == copy_id]
    go_copy["parent"] = our_copy["parent"]  # the base layer's ID differs, nothing else may
    assert _record(our_copy) == _record(go_copy)
    assert go.run("diff", go_copy["id"]).stdout == go.run("diff", "top0").stdout

    ours = GoCLI(ours_g, ours_r)
    assert copy_id in ours.out("layers")
    assert ours.run("diff", copy_id).stdout == ours.run("diff", top.id).stdout == TOP_TAR
    mounted = Path(ours.out("mount", copy_id).strip())
    try:
        assert os.lstat(mounted / "d/f").st_uid == 100010
    finally:
        ours.run("unmount", copy_id)


def test_killed_copy_is_not_left_recorded(tmp_path: Path) -> None:
    require_privileged("chown to other users needs root")
    graph, run = tmp_path / "g", tmp_path / "r"
    store = open_store(graph_root=str(graph), run_root=str(run), driver_name="vfs")
    try:
        # Enough files that the copy takes a while: the kill lands while it is being made.
        files = [_entry(f"f{i:04}", data=b"x" * 64, uid=i % 7) for i in range(3000)]
        top = store.put_layer(diff=io.BytesIO(_tar(files)))
        image = store.create_image(layer=top.id).id
    finally:
        store.shutdown(force=True)
    script = (
        "import sys; from cs_core.store import ContainerOptions, open_store; "
        "from cs_core.model import IDMap; m = [IDMap(0, 100000, 65536)]; "
        f"s = open_store(graph_root={str(graph)!r}, run_root={str(run)!r}, driver_name='vfs'); "
        f"s.create_container(image={image!r}, options=ContainerOptions(uid_map=m, gid_map=m))")
    layers_json = graph / "vfs-layers/layers.json"
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=REPO)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            records = json.loads(layers_json.read_bytes())
            half = [la["id"] for la in records if la.get("flags", {}).get("incomplete")]
            # Killed once the driver has begun the copy: part of the tree is on disk.
            if half and (graph / "vfs/dir" / half[0]).exists():
                proc.send_signal(signal.SIGKILL)
                break
            half = []
            time.sleep(0.001)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    assert half, "the copy finished before the kill: make the layer bigger"
    assert (graph / "vfs/dir" / half[0]).exists()  # the half-made copy is there to clean up
    store = open_store(graph_root=str(graph), run_root=str(run), driver_name="vfs")
    try:
        store.create_container(image=image)  # a write-access load cleans up the half copy
        assert {la.id for la in store.layers()} == {top.id, store.containers()[0].layer}
        assert not (graph / "vfs/dir" / half[0]).exists()
        assert not (graph / f"vfs-layers/{half[0]}.tar-split.gz").exists()
        assert store.image(image).mapped_top_layers == []
        assert store.check().empty(), store.check().to_go_json()
    finally:
        store.shutdown(force=True)
