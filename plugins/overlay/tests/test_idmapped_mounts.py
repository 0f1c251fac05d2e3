"""Containers with ID maps on overlay: host-owned layers, ID-mapped lowers at mount time (Go).

Go 1.43 on a kernel with ID-mapped mounts keeps every layer owned as on the host and maps a
container's lower dirs when it is mounted; no mapped copy of the image's top layer is made.
The upper dir is not mapped: what the container writes lands there with the IDs it wrote as.
"""

from __future__ import annotations

import io
import os
import shutil
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cs_overlay import mounting
from cs_overlay.driver import OverlayDriver
from cs_overlay.idmapped import mapped_mount_root
from cs_overlay.testing import layer_id, unmount_all_under

from cs_core.drivers.base import CreateOpts, MountOpts
from cs_core.errors import ShiftingNotEnabled
from cs_core.model import IDMap
from cs_core.store import ContainerOptions, LayerOptions, Store, open_store
from cs_core.testing import go_cli_path, require_privileged, requires_command
from cs_core.testing.gocli import GoCLI
from cs_core.testing.privileged import require

DISABLE = "_CONTAINERS_OVERLAY_DISABLE_IDMAP"
MAPS = [IDMap(0, 100000, 65536)]
#: What each test file is owned by inside the image, and so on disk.
OWNERS = {"etc": (0, 0), "etc/owned": (10, 20), "top": (0, 0)}


def _image_tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, (uid, gid) in OWNERS.items():
            info = tarfile.TarInfo(name)
            info.uid, info.gid = uid, gid
            if name == "etc":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size, info.mode = 2, 0o644
                tar.addfile(info, io.BytesIO(b"hi"))
    return buf.getvalue()


def _owners(root: Path) -> dict[str, tuple[int, int]]:
    out = {}
    for name in OWNERS:
        st = os.lstat(root / name)
        out[name] = (st.st_uid, st.st_gid)
    return out


def _shifted(owners: dict[str, tuple[int, int]], by: int) -> dict[str, tuple[int, int]]:
    return {k: (u + by, g + by) for k, (u, g) in owners.items()}


def _children() -> list[int]:
    """Processes (zombies included) whose parent is this one: helpers must all be reaped."""
    me, out = os.getpid(), []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == me:
                out.append(int(entry))
    return out


def _mounts_under(path: Path) -> list[str]:
    prefix = str(path.resolve())
    return [p for p in mounting.mountinfo_targets() if p.startswith(prefix)]


@pytest.fixture
def dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, Path]]:
    require_privileged("ID-mapped mounts need root")
    monkeypatch.delenv(DISABLE, raising=False)
    try:
        yield tmp_path / "g", tmp_path / "r"
    finally:
        unmount_all_under(tmp_path)


def _open(dirs: tuple[Path, Path]) -> Store:
    store = open_store(graph_root=str(dirs[0]), run_root=str(dirs[1]), driver_name="overlay")
    driver = store.driver
    assert isinstance(driver, OverlayDriver)
    if not driver.supports_idmapped_mounts():
        store.shutdown(force=True)
        require(False, "the kernel cannot use ID-mapped mounts as overlay lower dirs")
    return store


@pytest.fixture
def store(dirs: tuple[Path, Path]) -> Iterator[Store]:
    s = _open(dirs)
    try:
        yield s
    finally:
        s.shutdown(force=True)


def test_container_lowers_are_mapped_at_mount_time(store: Store) -> None:
    assert ("Supports shifting", "true") in store.driver.status()
    assert (store.run_root / "overlay" / "idmapped-lower-dir-true").exists()  # Go's cache file
    top = store.put_layer(diff=io.BytesIO(_image_tar()),
                          options=LayerOptions(uid_map=MAPS, gid_map=MAPS))
    assert top.uid_map == [] and top.gid_map == []  # Go's PutLayer: host-owned when it can shift
    image = store.create_image(layer=top.id)
    container = store.create_container(image=image.id,
                                       options=ContainerOptions(uid_map=MAPS, gid_map=MAPS))
    assert store.image(image.id).mapped_top_layers == []
    rw = store.layer(container.layer)
    assert rw.parent == top.id and rw.uid_map == [] and rw.gid_map == []
    assert store.container(container.id).uid_map == MAPS

    home = store.graph_root / "overlay"
    merged = Path(store.mount(container.id))
    try:
        assert _owners(merged) == _shifted(OWNERS, 100000)
        # the mapped lowers are detached once the overlay holds them; helpers are reaped
        assert _mounts_under(home / rw.id / "mapped") == []
        assert not any((home / rw.id / "mapped").iterdir())
        assert _children() == []
        # written as the container's uid 5, and a copy-up of an image file
        (merged / "new").write_text("n")
        os.chown(merged / "new", 100005, 100006)
        with open(merged / "etc" / "owned", "a") as fh:
            fh.write("!")
    finally:
        store.unmount(container.id)
    assert _owners(home / top.id / "diff") == OWNERS  # the image layer is never re-owned
    upper = home / rw.id / "diff"
    st = os.lstat(upper / "etc" / "owned")
    assert (st.st_uid, st.st_gid) == (100010, 100020)  # copied up as seen through the map
    st = os.lstat(upper / "new")
    assert (st.st_uid, st.st_gid) == (100005, 100006)
    # The layer itself (no container maps) mounts unmapped; the container again mapped.
    plain = Path(store.mount(top.id))
    try:
        assert _owners(plain) == OWNERS
    finally:
        store.unmount(top.id)
    merged = Path(store.mount(container.id))
    try:
        assert (merged / "etc" / "owned").read_text() == "hi!"
        assert _owners(merged)["top"] == (100000, 100000)
    finally:
        store.unmount(container.id)


def test_non_contiguous_maps_get_a_mapped_copy_mounted_unshifted(store: Store) -> None:
    # Go's canUseShifting refuses maps with holes: the container gets a re-owned copy and its
    # mount passes DisableShifting, so the copy is not mapped a second time.
    holes = [IDMap(0, 100000, 15), IDMap(15, 300000, 65521)]
    top = store.put_layer(diff=io.BytesIO(_image_tar()))
    image = store.create_image(layer=top.id)
    container = store.create_container(image=image.id,
                                       options=ContainerOptions(uid_map=holes, gid_map=holes))
    copies = store.image(image.id).mapped_top_layers
    assert len(copies) == 1 and store.layer(copies[0]).uid_map == holes
    merged = Path(store.mount(container.id))
    try:
        assert _owners(merged) == {"etc": (100000, 100000), "etc/owned": (100010, 300005),
                                   "top": (100000, 100000)}
    finally:
        store.unmount(container.id)


def test_disabled_idmap_falls_back_to_a_mapped_copy(dirs: tuple[Path, Path],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    store = _open(dirs)
    try:
        top = store.put_layer(diff=io.BytesIO(_image_tar()))
        image = store.create_image(layer=top.id)
        shifted = store.create_container(image=image.id,
                                         options=ContainerOptions(uid_map=MAPS, gid_map=MAPS))
    finally:
        store.shutdown(force=True)
    monkeypatch.setenv(DISABLE, "yes")
    store = open_store(graph_root=str(dirs[0]), run_root=str(dirs[1]), driver_name="overlay")
    try:
        assert ("Supports shifting", "false") in store.driver.status()
        container = store.create_container(image=image.id,
                                           options=ContainerOptions(uid_map=MAPS, gid_map=MAPS))
        copies = store.image(image.id).mapped_top_layers
        assert len(copies) == 1 and store.layer(container.layer).parent == copies[0]
        assert store.layer(container.layer).uid_map == MAPS
        merged = Path(store.mount(container.id))
        try:
            assert _owners(merged) == _shifted(OWNERS, 100000)
        finally:
            store.unmount(container.id)
        assert _owners(store.graph_root / "overlay" / top.id / "diff") == OWNERS
        # A container that relies on shifting cannot be mounted without it (Go's message).
        with pytest.raises(ShiftingNotEnabled,
                           match=f"^cannot mount layer {shifted.layer}: shifting not enabled$"):
            store.mount(shifted.id)
        assert store.mounted(shifted.id) == 0
    finally:
        store.shutdown(force=True)


@pytest.mark.interop
def test_go_and_we_show_the_same_owners_both_ways(dirs: tuple[Path, Path], tmp_path: Path) -> None:
    go_cli_path()
    graph, run = dirs
    go = GoCLI(graph, run, "overlay")
    (tmp_path / "image.tar").write_bytes(_image_tar())
    top = go.out("import-layer", "-f", str(tmp_path / "image.tar")).split()[-1]
    image = go.out("create-image", top).split()[-1]
    go_ctr = go.out("create-container", "--uidmap", "0:100000:65536", "--gidmap",
                    "0:100000:65536", image).split()[-1]
    store = _open(dirs)
    try:
        assert store.image(image).mapped_top_layers == []  # Go shifted too: no copy
        ours = store.create_container(image=image,
                                      options=ContainerOptions(uid_map=MAPS, gid_map=MAPS))
        assert store.image(image).mapped_top_layers == []
        seen: dict[str, dict[str, dict[str, tuple[int, int]]]] = {}
        for ctr in (go_ctr, ours.id):
            merged = Path(store.mount(ctr))
            try:
                seen.setdefault(ctr, {})["ours"] = _owners(merged)
            finally:
                store.unmount(ctr)
            merged = Path(go.out("mount", ctr).strip())
            try:
                seen[ctr]["go"] = _owners(merged)
            finally:
                go.run("unmount", ctr)
            assert seen[ctr]["ours"] == seen[ctr]["go"] == _shifted(OWNERS, 100000), ctr
        assert _children() == []
    finally:
        store.shutdown(force=True)


def test_fuse_overlayfs_maps_contiguous_maps_itself(
        make_driver: Callable[..., OverlayDriver]) -> None:
    requires_command("fuse-overlayfs", "fusermount3")
    d = make_driver(f"overlay.mount_program={shutil.which('fuse-overlayfs')}")
    assert d.supports_shifting(MAPS, MAPS)
    assert not d.supports_shifting([IDMap(0, 100000, 10), IDMap(20, 200000, 10)], MAPS)
    d.create(layer_id(1), None, CreateOpts())
    (d.home / layer_id(1) / "diff" / "f").write_text("f")
    os.chown(d.home / layer_id(1) / "diff" / "f", 10, 20)
    d.create_read_write(layer_id(2), layer_id(1), CreateOpts())
    merged = d.get(layer_id(2), MountOpts(uid_map=tuple(MAPS), gid_map=tuple(MAPS)))
    try:
        st = os.lstat(merged / "f")
        assert (st.st_uid, st.st_gid) == (100010, 100020)
    finally:
        d.put(layer_id(2))
    merged = d.get(layer_id(2), MountOpts(uid_map=tuple(MAPS), gid_map=tuple(MAPS),
                                          disable_shifting=True))
    try:
        st = os.lstat(merged / "f")
        assert (st.st_uid, st.st_gid) == (10, 20)
    finally:
        d.put(layer_id(2))


def test_mapped_mount_root_keeps_link_paths_uncleaned() -> None:
    assert mapped_mount_root("/h/l/ABC") == "/h"
    assert mapped_mount_root("/h/l/ABC/../diff1") == "/h/l/ABC/.."  # still through the link
    assert mapped_mount_root("/h/0123/empty") == "/h/0123"


@pytest.mark.parametrize("legacy", [False, True], ids=["new-mount-api", "mount(2)"])
def test_rotated_lower_diffs_are_reached_through_the_mapped_link(driver: OverlayDriver,
                                                                 legacy: bool) -> None:
    # A lower re-owned by update_layer_id_map keeps files in diff1, named l/LINK/../diff1:
    # Go 1.43 cleans that to l/diff1 under the mapped mount and fails; we must not.
    require(driver.supports_idmapped_mounts(), "the kernel cannot ID-map overlay lower dirs")
    base, mid, top = layer_id(1), layer_id(2), layer_id(3)
    driver.create(base, None, CreateOpts())
    (driver.home / base / "diff" / "b").write_text("b")
    driver.create(mid, base, CreateOpts())
    (driver.home / mid / "diff" / "m").write_text("m")
    driver.update_layer_id_map(mid, ((), ()), ([IDMap(0, 1000, 65536)], [IDMap(0, 1000, 65536)]))
    assert (driver.home / mid / "diff1" / "m").exists()
    driver.create_read_write(top, mid, CreateOpts())
    mounting.force_legacy(legacy)
    try:
        merged = driver.get(top, MountOpts(uid_map=tuple(MAPS), gid_map=tuple(MAPS)))
        try:
            assert os.lstat(merged / "m").st_uid == 101000  # 1000 on disk, through the map
            assert os.lstat(merged / "b").st_uid == 101000  # copied up into diff1 when re-owned
            assert (merged / "m").read_text() == "m"
        finally:
            driver.put(top)
    finally:
        mounting.force_legacy(False)
    assert [p for p in _mounts_under(driver.home) if p != str(driver.home.resolve())] == []
