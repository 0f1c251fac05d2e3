"""Driver options as Go parses them, quotas' pure parts and their errors, the support probe."""

from __future__ import annotations

import ctypes
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from cs_overlay import quota
from cs_overlay.driver import OverlayDriver
from cs_overlay.options import parse_options, ram_in_bytes
from cs_overlay.testing import layer_id, unmount_all_under

from cs_core.drivers.base import CreateOpts, DriverConfig, MountOpts
from cs_core.errors import NotSupported, StorageError


def test_prefixes_and_case() -> None:
    o = parse_options(["overlay.mountopt=nodev", "overlay2.Skip_Mount_Home=true", ".force_mask=private",
                       "ignore_chown_errors=1", "overlay.override_kernel_check=true"])
    assert o.mount_options == "nodev" and o.skip_mount_home and o.force_mask == 0o700
    assert o.ignore_chown_errors
    assert parse_options(["overlay.force_mask=shared"]).force_mask == 0o755
    assert parse_options(["overlay.force_mask=0750"]).force_mask == 0o750
    assert parse_options(["vfs.imagestore=/x"]).image_stores == []  # another driver's option


def test_unknown_and_malformed_options() -> None:
    with pytest.raises(StorageError, match=r"^overlay: unknown option overlay\.Foo$"):
        parse_options(["overlay.Foo=1"])
    with pytest.raises(StorageError, match="invalid syntax"):
        parse_options(["overlay.skip_mount_home=maybe"])
    with pytest.raises(StorageError, match="is not absolute"):
        parse_options(["overlay.imagestore=relative/dir"])
    with pytest.raises(StorageError, match="can't stat program"):
        parse_options(["overlay.mount_program=/nonexistent/fuse-overlayfs"])
    with pytest.raises(StorageError, match="invalid size"):
        parse_options(["overlay.size=ten"])


def test_image_stores(tmp_path: Path) -> None:
    o = parse_options([f"overlay.imagestore={tmp_path}/,{tmp_path}"])
    assert o.image_stores == [tmp_path, tmp_path]


@pytest.mark.parametrize(("text", "value"), [
    ("10", 10), ("10M", 10 << 20), ("10m", 10 << 20), ("1.5G", 3 << 29), ("512KiB", 512 << 10),
    ("2kb", 2048), ("1 g", 1 << 30),
])
def test_ram_in_bytes(text: str, value: int) -> None:
    assert ram_in_bytes(text) == value


def test_project_id_derivation_and_quota_record() -> None:
    assert quota.derive_project_id(0) == 10000
    assert quota.derive_project_id(7) == 10000 + 70000
    big = 2**40 + 3
    assert quota.derive_project_id(big) == 10000 + (big * 10000) % (2**32 - 1 - 10000)
    rec = quota.quota_record(12345, quota.Quota(size=10 << 20, inodes=100))
    assert ctypes.sizeof(rec) == 112  # struct fs_disk_quota
    assert rec.d_id == 12345 and rec.d_flags == quota.FS_PROJ_QUOTA
    assert rec.d_blk_hardlimit == rec.d_blk_softlimit == (10 << 20) // 512
    assert rec.d_ino_hardlimit == 100
    assert rec.d_fieldmask == quota.FS_DQ_BHARD | quota.FS_DQ_BSOFT | quota.FS_DQ_IHARD | quota.FS_DQ_ISOFT
    assert quota.quota_record(1, quota.Quota()).d_fieldmask == 0
    assert quota.qcmd(0x5804, 2) == 0x580402


def test_quota_options_need_xfs(make_driver: Callable[..., OverlayDriver]) -> None:
    with pytest.raises(NotSupported) as info:
        make_driver("overlay.size=10M")
    assert str(info.value) == ("storage option overlay.size and overlay.inodes only supported for "
                               "backingFS XFS. Found extfs")


def test_storage_opt_rules(driver: OverlayDriver) -> None:
    with pytest.raises(StorageError, match="only supported for ReadWrite Layers"):
        driver.create(layer_id(1), None, CreateOpts(storage_opt={"size": "1M"}))
    with pytest.raises(StorageError, match="supported only for overlay over xfs"):
        driver.create_read_write(layer_id(1), None, CreateOpts(storage_opt={"size": "1M"}))
    assert not driver.exists(layer_id(1))


def test_project_id_ioctl_on_ext4(tmp_path: Path) -> None:
    from cs_core.testing import require_privileged

    require_privileged()
    # ext4 answers FS_IOC_FSGETXATTR too: project 0 unless quotas were set up
    assert quota.get_project_id(str(tmp_path)) == 0


def test_force_mask_needs_mount_program(make_driver: Callable[..., OverlayDriver]) -> None:
    with pytest.raises(StorageError, match=r"^'force_mask' is supported only with 'mount_program'$"):
        make_driver("overlay.force_mask=0700")


def test_overlay_backing_filesystem(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Refused without a mount program; as Go, fuse-overlayfs on PATH takes over silently."""
    from cs_core.testing import require_privileged, requires_command

    require_privileged()
    for d in ("lower", "upper", "work", "merged"):
        (tmp_path / d).mkdir()
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                    f"lowerdir={tmp_path}/lower,upperdir={tmp_path}/upper,workdir={tmp_path}/work",
                    str(tmp_path / "merged")], check=True)
    try:
        graph = tmp_path / "merged" / "graph"
        cfg = DriverConfig(home=graph / "overlay", run_home=tmp_path / "run" / "overlay",
                           graph_root=graph, run_root=tmp_path / "run")
        with monkeypatch.context() as m:
            m.setenv("PATH", "/nonexistent")
            with pytest.raises(NotSupported, match="'overlay' is not supported over overlayfs, a "
                                                   "mount_program is required"):
                OverlayDriver.probe(cfg)
            with pytest.raises(NotSupported):
                OverlayDriver(cfg)
            assert not os.path.exists(graph / "overlay")
        requires_command("fuse-overlayfs", "fusermount3")
        d = OverlayDriver(cfg)
        try:
            assert d.opts.mount_program.endswith("fuse-overlayfs")
            assert (d.home / ".has-mount-program").read_text() == "true"
            d.create(layer_id(1), None, CreateOpts())
            merged = d.get(layer_id(1), MountOpts())
            try:
                (merged / "f").write_text("x")
            finally:
                d.put(layer_id(1))
            assert (d.home / layer_id(1) / "diff" / "f").read_text() == "x"
        finally:
            d.cleanup()
    finally:
        unmount_all_under(tmp_path)
