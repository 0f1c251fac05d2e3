"""overlay with ``mount_program=fuse-overlayfs``: same layout, FUSE mounts, AUFS whiteouts."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable

import pytest
from cs_overlay import mounting
from cs_overlay.driver import OverlayDriver
from cs_overlay.testing import layer_id

from cs_core.archive.whiteouts import WhiteoutFormat
from cs_core.drivers.base import CreateOpts, MountOpts
from cs_core.testing import requires_command


@pytest.fixture
def fuse_driver(make_driver: Callable[..., OverlayDriver]) -> OverlayDriver:
    requires_command("fuse-overlayfs", "fusermount3")
    prog = shutil.which("fuse-overlayfs")
    assert prog
    return make_driver(f"overlay.mount_program={prog}")


def test_fuse_mount_put(fuse_driver: OverlayDriver) -> None:
    d = fuse_driver
    assert d.whiteout_format is WhiteoutFormat.AUFS
    assert (d.home / ".has-mount-program").read_text() == "true"
    assert ("Native Overlay Diff", "false") in d.status()
    d.create(layer_id(1), None, CreateOpts())
    (d.home / layer_id(1) / "diff" / "base").write_text("1")
    (d.home / layer_id(1) / "diff" / "gone").write_text("1")
    d.create(layer_id(2), layer_id(1), CreateOpts())
    # FUSE helpers read AUFS whiteouts literally from diff/
    (d.home / layer_id(2) / "diff" / ".wh.gone").write_text("")
    d.create_read_write(layer_id(3), layer_id(2), CreateOpts())
    merged = d.get(layer_id(3), MountOpts())
    try:
        assert mounting.mountinfo_targets()[str(merged)].startswith("fuse")
        assert d.is_mounted(layer_id(3), str(merged))
        assert sorted(os.listdir(merged)) == ["base"]
        (merged / "new").write_text("3")
        os.unlink(merged / "base")
    finally:
        d.put(layer_id(3))
    assert not d.is_mounted(layer_id(3), str(merged)) and merged.is_dir()
    assert (d.home / layer_id(3) / "diff" / "new").read_text() == "3"
    ro = d.get(layer_id(2), MountOpts(options=("ro",)))
    try:
        assert sorted(os.listdir(ro)) == ["base"]
    finally:
        d.put(layer_id(2))


def test_force_mask_accepted_with_mount_program(make_driver: Callable[..., OverlayDriver]) -> None:
    requires_command("fuse-overlayfs", "fusermount3")
    d = make_driver(f"overlay.mount_program={shutil.which('fuse-overlayfs')}", "overlay.force_mask=0700")
    d.create(layer_id(1), None, CreateOpts())
    assert os.stat(d.home / layer_id(1) / "diff").st_mode & 0o7777 == 0o700
    merged = d.get(layer_id(1), MountOpts())
    try:
        (merged / "f").write_text("x")
    finally:
        d.put(layer_id(1))


def test_store_populated_by_fuse_overlayfs_keeps_using_it(make_driver: Callable[..., OverlayDriver],
                                                          store_dirs: tuple[object, object]) -> None:
    requires_command("fuse-overlayfs", "fusermount3")
    first = make_driver("overlay.skip_mount_home=true")
    first.create(layer_id(1), None, CreateOpts())
    (first.home / layer_id(1) / "diff" / ".wh.deleted").write_text("")
    (first.home / ".has-mount-program").unlink()  # a store older than the flag file
    again = make_driver("overlay.skip_mount_home=true")
    assert (again.home / ".has-mount-program").read_text() == "true"
    assert again.opts.mount_program == shutil.which("fuse-overlayfs")
    assert again.whiteout_format is WhiteoutFormat.AUFS


def test_force_mask_records_real_owner_and_mode(make_driver: Callable[..., OverlayDriver]) -> None:
    import io
    import tarfile

    from cs_core.drivers.base import ApplyDiffOpts

    requires_command("fuse-overlayfs", "fusermount3")
    d = make_driver(f"overlay.mount_program={shutil.which('fuse-overlayfs')}", "overlay.force_mask=0700")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        info = tarfile.TarInfo("tool")
        info.mode, info.uid, info.gid, info.size = 0o4755, 12, 34, 2
        tf.addfile(info, io.BytesIO(b"hi"))
    buf.seek(0)
    d.create(layer_id(1), None, CreateOpts())
    d.apply_diff(layer_id(1), None, buf, ApplyDiffOpts())
    path = d.home / layer_id(1) / "diff" / "tool"
    st = os.lstat(path)
    assert st.st_mode & 0o7777 == 0o700  # what the FUSE helper enforces on disk
    # the real owner and mode, in Go 1.43's (uid:gid:0mode) or HEAD's (...:type) form
    assert os.getxattr(path, "user.containers.override_stat") in (b"12:34:0755", b"12:34:4755:file")


def test_store_on_fuse_overlayfs_round_trip(store_dirs: tuple[object, object]) -> None:
    import io
    import tarfile
    from pathlib import Path

    from cs_core.store import open_store

    requires_command("fuse-overlayfs", "fusermount3")
    graph, run = store_dirs

    def tar(entries: dict[str, bytes]) -> bytes:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tf:
            for name, data in entries.items():
                info = tarfile.TarInfo(name)
                info.size, info.mtime = len(data), 1_700_000_000
                tf.addfile(info, io.BytesIO(data))
        return buf.getvalue()

    store = open_store(graph_root=str(graph), run_root=str(run), driver_name="overlay",
                       driver_options=[f"overlay.mount_program={shutil.which('fuse-overlayfs')}"])
    try:
        base = store.put_layer(diff=io.BytesIO(tar({"a": b"1", "b": b"2"})))
        top_tar = tar({"c": b"3", ".wh.a": b""})
        top = store.put_layer(parent=base.id, diff=io.BytesIO(top_tar))
        merged = Path(store.mount(top.id))
        try:
            assert sorted(os.listdir(merged)) == ["b", "c"]
        finally:
            store.unmount(top.id)
        assert [(c.kind_name, c.path) for c in store.changes(base.id, top.id)] == [
            ("Delete", "/a"), ("Add", "/c")]
        out = io.BytesIO()
        store.diff(base.id, top.id, out)
        assert out.getvalue() == top_tar  # tar-split replay, files read through diff_getter
    finally:
        store.shutdown(force=True)


def test_failing_mount_program_is_one_clear_line(make_driver: Callable[..., OverlayDriver],
                                                tmp_path: object) -> None:
    from pathlib import Path

    from cs_core.errors import StorageError

    prog = Path(str(tmp_path)) / "broken-helper"
    prog.write_text("#!/bin/sh\necho 'fuse: device not found' >&2\necho 'try modprobe fuse' >&2\nexit 1\n")
    prog.chmod(0o755)
    d = make_driver(f"overlay.mount_program={prog}")
    d.create(layer_id(1), None, CreateOpts())
    with pytest.raises(StorageError) as info:
        d.get(layer_id(1), MountOpts())
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith(f"creating overlay mount to {d.home / layer_id(1) / 'merged'}")
    assert msg.endswith(f"using mount program {prog}: fuse: device not found; try modprobe fuse")
