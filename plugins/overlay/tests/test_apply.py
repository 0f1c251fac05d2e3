"""apply_diff writes overlay's native whiteouts straight into the layer's diff/."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from collections.abc import Callable

from cs_overlay.driver import OverlayDriver
from cs_overlay.testing import layer_id

from cs_core.drivers.base import ApplyDiffOpts, CreateOpts, MountOpts
from cs_core.testing.tars import layer_tar


def make_tar(entries: list[tuple[str, bytes | None]]) -> io.BytesIO:
    """``(name, data)``; data None makes a directory."""
    return io.BytesIO(layer_tar(entries))


def entries(data: bytes) -> list[tuple[str, bytes, int, int, bytes]]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        return [(m.name, m.type, m.mode, m.size,
                 (tf.extractfile(m) or io.BytesIO()).read() if m.isfile() else b"") for m in tf]


BASE = [("etc/", None), ("etc/os", b"base"), ("gone", b"g"), ("dir/", None), ("dir/old", b"o"),
        ("keep", b"k")]
CHILD = [("etc/", None), ("etc/os", b"child"), (".wh.gone", b""), ("dir/", None),
         ("dir/.wh..wh..opq", b""), ("dir/new", b"n")]


def apply_chain(d: OverlayDriver) -> tuple[str, str]:
    base, child = layer_id(1), layer_id(2)
    d.create(base, None, CreateOpts())
    res = d.apply_diff(base, None, make_tar(BASE), ApplyDiffOpts())
    assert res.size > 0 and res.uids == (0,)
    d.create(child, base, CreateOpts())
    d.apply_diff(child, base, make_tar(CHILD), ApplyDiffOpts())
    return base, child


def test_apply_native_whiteouts(driver: OverlayDriver) -> None:
    _, child = apply_chain(driver)
    diff = driver.home / child / "diff"
    st = os.lstat(diff / "gone")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert os.getxattr(diff / "dir", "trusted.overlay.opaque") == b"y"
    assert not (diff / ".wh.gone").exists() and not (diff / "dir" / ".wh..wh..opq").exists()
    merged = driver.get(child, MountOpts(options=("ro",)))
    try:
        assert sorted(os.listdir(merged)) == ["dir", "etc", "keep"]
        assert os.listdir(merged / "dir") == ["new"]
        assert (merged / "etc" / "os").read_text() == "child"
    finally:
        driver.put(child)


def test_apply_with_mount_program_keeps_aufs_whiteouts(make_driver: Callable[..., OverlayDriver]) -> None:
    from cs_core.testing import requires_command

    requires_command("fuse-overlayfs", "fusermount3")
    import shutil

    d = make_driver(f"overlay.mount_program={shutil.which('fuse-overlayfs')}")
    _, child = apply_chain(d)
    diff = d.home / child / "diff"
    assert (diff / ".wh.gone").is_file() and (diff / "dir" / ".wh..wh..opq").is_file()
    merged = d.get(child, MountOpts(options=("ro",)))
    try:
        assert sorted(os.listdir(merged)) == ["dir", "etc", "keep"]
        assert os.listdir(merged / "dir") == ["new"]
    finally:
        d.put(child)


def test_climbing_names_never_leave_the_layer(driver: OverlayDriver) -> None:
    from cs_core.errors import StorageError

    driver.create(layer_id(1), None, CreateOpts())
    try:  # the tar engine may refuse the entry or clamp it to the root; it must not escape
        driver.apply_diff(layer_id(1), None, make_tar([("../../escape", b"x")]), ApplyDiffOpts())
    except StorageError as exc:
        assert "outside" in str(exc)
    assert not (driver.home / "escape").exists() and not (driver.home / layer_id(1) / "escape").exists()


def test_native_diff_round_trip(driver: OverlayDriver) -> None:
    base, child = apply_chain(driver)
    with driver.diff(child, base) as stream:
        data = stream.read()
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        names = tf.getnames()
        assert tf.extractfile("etc/os").read() == b"child"  # type: ignore[union-attr]
    assert names == ["dir", "dir/.wh..wh..opq", "dir/new", "etc", "etc/os", ".wh.gone"]
    assert [(c.kind_name, c.path) for c in driver.changes(child, base)] == [
        # /etc: same mode and mtime as below, so not a change (as Go's OverlayChanges)
        ("Delete", "/dir"), ("Add", "/dir/new"), ("Modify", "/etc/os"), ("Delete", "/gone")]
    assert driver.diff_size(child, base) == len(b"child") + len(b"n")
    # applying our own diff to a fresh child of the same parent reproduces the layer
    copy = layer_id(3)
    driver.create(copy, base, CreateOpts())
    driver.apply_diff(copy, base, io.BytesIO(data), ApplyDiffOpts())
    with driver.diff(copy, base) as stream:
        # equal but for the whiteout's mtime, which is when apply_diff made the char device
        assert entries(stream.read()) == entries(data)


def test_diff_stream_reports_producer_errors(driver: OverlayDriver) -> None:
    import shutil

    import pytest

    base, child = apply_chain(driver)
    shutil.rmtree(driver.home / child / "diff")
    with pytest.raises(OSError), driver.diff(child, base) as stream:
        stream.read()


def test_diff_against_other_than_parent_falls_back_to_naive(driver: OverlayDriver) -> None:
    _, child = apply_chain(driver)
    with driver.diff(child, None) as stream, tarfile.open(fileobj=io.BytesIO(stream.read())) as tf:
        names = sorted(tf.getnames())
    # the whole merged tree, with no whiteouts: "gone" and "dir/old" are simply absent
    assert names == ["dir", "dir/new", "etc", "etc/os", "keep"]
    assert {c.kind_name for c in driver.changes(child, None)} == {"Add"}
    merged = driver.home / child / "merged"
    assert not driver.is_mounted(child, str(merged))  # the naive diff unmounted what it mounted


# A three-layer chain for diffs against an ancestor that is not the parent: the grandparent has
# many files nobody touches, so a diff that reads the wrong tree lists them.
GRAND = [("etc/", None), ("etc/os", b"base"), ("gone", b"g"), ("dir/", None), ("dir/old", b"o"),
         ("keep", b"k"), ("many/", None), *((f"many/f{i:02}", b"m") for i in range(20))]
MIDDLE = [("etc/", None), ("etc/os", b"middle"), (".wh.gone", b""), (".wh.dir", b"")]
TOP_LAYER = [("dir/", None), ("dir/new", b"n"), ("x", b"xx")]


def apply_three(d: OverlayDriver) -> tuple[str, str, str]:
    ids = layer_id(1), layer_id(2), layer_id(3)
    parent = None
    for id, content in zip(ids, (GRAND, MIDDLE, TOP_LAYER), strict=True):
        d.create(id, parent, CreateOpts())
        d.apply_diff(id, parent, make_tar(content), ApplyDiffOpts())
        parent = id
    return ids


def test_changes_and_diff_against_a_non_parent_ancestor(driver: OverlayDriver) -> None:
    base, _, top = apply_three(driver)
    # The naive comparison of the two merged trees (Go's ChangesDirs): only what the middle and
    # the top layer changed; "keep" and "many/" are the same in both trees.
    # A directory with a change below it is modified too, as in Go.
    want = [("Modify", "/dir"), ("Add", "/dir/new"), ("Delete", "/dir/old"), ("Modify", "/etc"),
            ("Modify", "/etc/os"), ("Delete", "/gone"), ("Add", "/x")]
    assert [(c.kind_name, c.path) for c in driver.changes(top, base)] == want
    with driver.diff(top, base) as stream:
        got = {name: data for name, _t, _m, _s, data in entries(stream.read())}
    assert sorted(got) == [".wh.gone", "dir", "dir/.wh.old", "dir/new", "etc", "etc/os", "x"]
    assert got["etc/os"] == b"middle" and got["x"] == b"xx"
    assert driver.diff_size(top, base) == len(b"middle") + len(b"n") + len(b"xx")
    for id in (top, base):
        assert not driver.is_mounted(id, str(driver.home / id / "merged"))


def test_native_changes_under_a_whiteout_of_an_ancestor_directory(driver: OverlayDriver) -> None:
    _, middle, top = apply_three(driver)
    # The top re-creates "dir", which the middle deleted: all of it is new, however many
    # entries ask the lowers about the same whited-out ancestor.
    assert [(c.kind_name, c.path) for c in driver.changes(top, middle)] == [
        ("Add", "/dir"), ("Add", "/dir/new"), ("Add", "/x")]
    with driver.diff(top, middle) as stream:
        assert [e[0] for e in entries(stream.read())] == ["dir", "dir/new", "x"]
    assert driver.diff_size(top, middle) == len(b"n") + len(b"xx")
