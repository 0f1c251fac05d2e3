"""Driver-level behaviour on a real btrfs: Go's layout, snapshots, removal, options, content."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path

import pytest
from cs_btrfs import fs, ioctl
from cs_btrfs.driver import BtrfsDriver
from cs_btrfs.options import human_size, ram_in_bytes

from cs_core.drivers.base import ApplyDiffOpts, CreateOpts, DriverConfig, MountOpts
from cs_core.errors import ConfigError, NotSupported
from cs_core.model import Change
from cs_core.testing import require_privileged
from cs_core.testing.loopfs import loop_filesystem
from cs_core.testing.tars import layer_tar

from .conftest import DriverFactory, subvolume_paths


def _tar(*members: tuple[str, bytes | None]) -> io.BytesIO:
    return io.BytesIO(layer_tar(members))


def test_layout_matches_go(driver: BtrfsDriver) -> None:
    driver.create("base", None, CreateOpts())
    base = driver.home / "subvolumes" / "base"
    assert ioctl.is_subvolume(base)
    assert stat.S_IMODE(os.stat(base).st_mode) == 0o555
    assert stat.S_IMODE(os.stat(driver.home).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(driver.home / "subvolumes").st_mode) == 0o700
    (base / "f").write_text("parent")

    driver.create("child", "base", CreateOpts())
    child = driver.get("child", MountOpts())
    assert child == driver.layer_dir("child") == driver.home / "subvolumes" / "child"
    assert ioctl.is_subvolume(child)
    assert (child / "f").read_text() == "parent"
    (child / "f").write_text("changed")
    assert (base / "f").read_text() == "parent"  # a snapshot, not a shared tree
    assert driver.exists("child") and not driver.exists("nope")
    assert driver.list_layers() == ["base", "child"]
    assert not (driver.home / "quotas").exists()


def test_create_on_missing_parent_fails_cleanly(driver: BtrfsDriver) -> None:
    with pytest.raises(Exception, match="no such file or directory"):
        driver.create("x", "missing", CreateOpts())
    assert not driver.exists("x")


def test_remove_nested_and_read_only_subvolumes(driver: BtrfsDriver, btrfs_mount: Path) -> None:
    before = subvolume_paths(btrfs_mount)
    driver.create("base", None, CreateOpts())
    driver.create_read_write("ctr", "base", CreateOpts())
    root = driver.get("ctr", MountOpts())
    # What a container might leave: nested subvolumes at several depths, a read-only snapshot
    # of one of them, and the layer itself turned read-only.
    ioctl.subvol_create(root, "nested")
    ioctl.subvol_create(root / "nested", "deeper")
    (root / "nested" / "deeper" / "file").write_text("x")
    (root / "a" / "b").mkdir(parents=True)
    ioctl.snapshot(root / "nested", root / "a" / "b", "ro-snap", read_only=True)
    with ioctl.open_dir(root) as fd:
        ioctl.set_flags(fd, ioctl.SUBVOL_RDONLY)
    with pytest.raises(OSError):
        (root / "cannot-write").write_text("x")
    assert len(subvolume_paths(btrfs_mount)) == len(before) + 5

    driver.remove("ctr")
    driver.remove("base")
    assert driver.list_layers() == []
    assert subvolume_paths(btrfs_mount) == before


def test_remove_missing_is_not_an_error(driver: BtrfsDriver) -> None:
    driver.remove("never-created")


def test_remove_plain_directory_layer(driver: BtrfsDriver) -> None:
    # A layer directory that is not a subvolume (copied in by hand, or left by a crash).
    d = driver.home / "subvolumes" / "plain"
    (d / "sub").mkdir(parents=True)
    (d / "sub" / "f").write_text("x")
    os.chmod(d, 0o555)
    driver.remove("plain")
    assert not d.exists()


def test_probe_rejects_other_filesystems(tmp_path: Path) -> None:
    require_privileged("a loop-mounted ext4 needs root")
    # A filesystem of our own, so the test means the same wherever tmp_path lives.
    with loop_filesystem("ext4", "64M", workdir=tmp_path) as other:
        assert fs.fs_magic(other) != fs.BTRFS_SUPER_MAGIC
        config = DriverConfig(home=other / "btrfs", run_home=other / "run", graph_root=other,
                              run_root=other / "run")
        with pytest.raises(NotSupported, match="is not on a btrfs filesystem"):
            BtrfsDriver.probe(config)
        with pytest.raises(NotSupported):
            BtrfsDriver(config)
        assert not (other / "btrfs").exists()


def test_home_is_a_private_mount_until_cleanup(make_driver: DriverFactory) -> None:
    d = make_driver()
    with open("/proc/self/mountinfo") as fh:
        line = next(ln for ln in fh if ln.split(" ")[4] == str(d.home))
    assert "shared:" not in line
    d.cleanup()
    assert not fs.is_mountpoint(str(d.home))


def test_status_as_go(driver: BtrfsDriver) -> None:
    assert driver.status() == [("Build Version", "Btrfs v6.2"), ("Library Version", "102")]


def test_get_rejects_mount_options(driver: BtrfsDriver) -> None:
    driver.create("l", None, CreateOpts())
    assert driver.get("l", MountOpts(options=("ro",))) == driver.layer_dir("l")
    with pytest.raises(ConfigError, match=r"^btrfs driver does not support mount options$"):
        driver.get("l", MountOpts(options=("nodev",)))
    with pytest.raises(Exception, match="no such file or directory"):
        driver.get("missing", MountOpts())


@pytest.mark.parametrize(("option", "message"), [
    ("btrfs.mountopt=nodev", "btrfs driver does not support mount options"),
    ("btrfs.foo=1", "unknown option btrfs.foo"),
    ("overlay.mountopt=nodev", "unknown option overlay.mountopt"),
    ("btrfs.min_space=lots", "invalid size: 'lots'"),
    ("novalue", "unable to parse key/value option: novalue"),
])
def test_bad_options(make_driver: DriverFactory, graph_dir: Path, option: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        make_driver(option)
    assert str(err.value) == message
    assert not fs.is_mountpoint(str(graph_dir / "graph" / "btrfs"))  # nothing left mounted


def test_go_size_helpers() -> None:
    assert ram_in_bytes("10M") == 10 << 20
    assert ram_in_bytes("1.5g") == 3 << 29
    assert ram_in_bytes("512KiB") == 512 << 10
    assert human_size(10 << 20) == "10.49MB"
    assert human_size(0) == "0B"


def test_apply_diff_and_naive_changes(driver: BtrfsDriver) -> None:
    driver.create("base", None, CreateOpts())
    res = driver.apply_diff("base", None, _tar(("etc", None), ("etc/a", b"aaa"), ("etc/b", b"bb"),
                                               ("keep", b"k")), ApplyDiffOpts())
    assert res.size > 0
    driver.create("child", "base", CreateOpts())
    driver.apply_diff("child", "base", _tar(("etc/.wh.a", b""), ("etc/c", b"new")), ApplyDiffOpts())
    root = driver.layer_dir("child")
    assert sorted(os.listdir(root / "etc")) == ["b", "c"]
    assert (driver.layer_dir("base") / "etc" / "a").exists()

    changes = driver.changes("child", "base")
    assert [(c.path, c.kind) for c in changes] == [
        ("/etc", Change.MODIFY), ("/etc/a", Change.DELETE), ("/etc/c", Change.ADD)]
    assert driver.diff_size("child", "base") == 3
    with driver.diff("child", "base") as stream, tarfile.open(fileobj=stream, mode="r|") as tf:
        names = [m.name for m in tf]
    assert names == ["etc", "etc/.wh.a", "etc/c"]


def test_driver_id_maps_own_the_subvolume_roots(graph_dir: Path) -> None:
    from cs_core.model import IDMap

    graph, run = graph_dir / "graph", graph_dir / "run"
    d = BtrfsDriver(DriverConfig(home=graph / "btrfs", run_home=run / "btrfs", graph_root=graph, run_root=run,
                                 uid_map=(IDMap(0, 100000, 65536),), gid_map=(IDMap(0, 200000, 65536),)))
    try:
        d.create("base", None, CreateOpts())
        d.create("child", "base", CreateOpts())
        for p in (d.home, d.home / "subvolumes", d.layer_dir("base"), d.layer_dir("child")):
            st = os.stat(p)
            assert (st.st_uid, st.st_gid) == (100000, 200000), p
    finally:
        d.cleanup()


@pytest.mark.parametrize("bad", ["", ".", "..", "../outside", "a/b"])
def test_ids_cannot_escape_the_subvolumes_dir(driver: BtrfsDriver, graph_dir: Path, bad: str) -> None:
    victim = graph_dir / "outside"
    victim.mkdir()
    (victim / "precious").write_text("x")
    for call in (lambda: driver.remove(bad), lambda: driver.create(bad, None, CreateOpts()),
                 lambda: driver.get(bad, MountOpts())):
        with pytest.raises(Exception, match="invalid layer ID"):
            call()
    assert (victim / "precious").exists()
