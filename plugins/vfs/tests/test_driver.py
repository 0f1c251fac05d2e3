"""vfs specifics: Go's option texts, on-disk layout and modes, additional image stores."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from cs_vfs.driver import VfsDriver

from cs_core.drivers.base import CreateOpts, DriverConfig, MountOpts
from cs_core.errors import StorageError
from cs_core.testing import go_cli_path
from cs_core.testing.gocli import GoCLI


def _config(tmp_path: Path, *options: str) -> DriverConfig:
    graph, run = tmp_path / "graph", tmp_path / "run"
    return DriverConfig(home=graph / "vfs", run_home=run / "vfs", graph_root=graph, run_root=run,
                        options=options)


# The texts are what Go's containers-storage 1.43 prints for the same options.
@pytest.mark.parametrize(("option", "message"), [
    ("vfs.mountopt=nodev", "vfs driver does not support mount options"),
    ("vfs.foo=1", "vfs driver does not support vfs.foo options"),
    ("VFS.Foo=1", "vfs driver does not support vfs.foo options"),
    ("overlay.mountopt=nodev", "vfs driver does not support overlay.mountopt options"),
    ("imagestore=/tmp", "vfs driver does not support imagestore options"),
    (".mountopt=x", "vfs driver does not support .mountopt options"),
    ("vfs.ignore_chown_errors=maybe", 'strconv.ParseBool: parsing "maybe": invalid syntax'),
    ("novalue", "unable to parse key/value option: novalue"),
])
def test_option_errors_are_gos(tmp_path: Path, option: str, message: str) -> None:
    with pytest.raises(StorageError) as caught:
        VfsDriver(_config(tmp_path, option))
    assert str(caught.value) == message


def test_accepted_options(tmp_path: Path) -> None:
    drv = VfsDriver(_config(tmp_path, "vfs.ignore_chown_errors=true", ".imagestore=/a,/b"))
    assert drv.ignore_chown_errors
    assert drv.additional_image_stores() == [Path("/a"), Path("/b")]


def test_layout_and_modes(tmp_path: Path) -> None:
    drv = VfsDriver(_config(tmp_path))
    drv.create("base", None, CreateOpts())
    root = drv.get("base", MountOpts())
    assert root == tmp_path / "graph" / "vfs" / "dir" / "base"
    assert stat.S_IMODE(os.stat(root).st_mode) == 0o555
    assert stat.S_IMODE(os.stat(root.parent).st_mode) == 0o700
    os.chmod(root, 0o750)
    drv.create("child", "base", CreateOpts())
    assert stat.S_IMODE(os.stat(drv.layer_dir("child")).st_mode) == 0o750  # the parent's mode
    with pytest.raises(StorageError, match=r"^vfs driver does not support mount options$"):
        drv.get("base", MountOpts(options=("rw", "nodev")))
    with pytest.raises(StorageError, match=r"^--storage-opt is not supported for vfs$"):
        drv.create("sized", None, CreateOpts(storage_opt={"size": "1G"}))
    (tmp_path / "graph" / "vfs" / "dir" / "stray-file").write_text("")
    assert drv.list_layers() == ["base", "child"]  # only directories are layers


def test_remove_read_only_trees(tmp_path: Path) -> None:
    drv = VfsDriver(_config(tmp_path))
    drv.create("l", None, CreateOpts())
    root = drv.get("l", MountOpts())
    os.chmod(root, 0o755)
    (root / "ro" / "deeper").mkdir(parents=True)
    (root / "ro" / "deeper" / "f").write_text("x")
    os.chmod(root / "ro" / "deeper", 0o500)
    os.chmod(root / "ro", 0o500)
    os.chmod(root, 0o555)
    drv.remove("l")
    assert not drv.exists("l") and not root.exists()


def test_layer_from_an_additional_image_store(tmp_path: Path) -> None:
    other = tmp_path / "other"
    (other / "vfs" / "dir" / "shared").mkdir(parents=True)
    (other / "vfs" / "dir" / "shared" / "f").write_text("from the image store")
    drv = VfsDriver(_config(tmp_path, f"vfs.imagestore={other}"))
    assert drv.exists("shared") and drv.list_layers() == []
    assert (drv.get("shared", MountOpts(options=("ro",))) / "f").read_text() == "from the image store"
    drv.create("child", "shared", CreateOpts())
    assert (drv.layer_dir("child") / "f").read_text() == "from the image store"


def test_go_and_we_share_a_store(tmp_path: Path) -> None:
    go_cli_path()
    go = GoCLI(tmp_path / "graph", tmp_path / "run", "vfs")
    base = go.out("create-layer").strip()
    drv = VfsDriver(_config(tmp_path))
    assert drv.list_layers() == [base]
    ours = drv.layer_dir(base)
    assert stat.S_IMODE(os.stat(ours).st_mode) == 0o555
    assert stat.S_IMODE(os.stat(ours.parent).st_mode) == 0o700
    # Go's child of our directory is a copy of it: our layout is its layout.
    os.chmod(ours, 0o755)
    (ours / "marker").write_text("written by cs_vfs")
    os.chmod(ours, 0o555)
    child = go.out("create-layer", base).strip()
    assert (drv.layer_dir(child) / "marker").read_text() == "written by cs_vfs"


def test_existing_layer_is_never_clobbered(tmp_path: Path) -> None:
    drv = VfsDriver(_config(tmp_path))
    drv.create("l", None, CreateOpts())
    os.chmod(drv.layer_dir("l"), 0o755)
    (drv.layer_dir("l") / "precious").write_text("keep")
    with pytest.raises(StorageError, match="file exists"):
        drv.create("l", None, CreateOpts())
    assert (drv.layer_dir("l") / "precious").read_text() == "keep"


def test_full_filesystem_is_one_clear_error(tmp_path: Path) -> None:
    from cs_core.testing import require_privileged
    from cs_core.testing.loopfs import loop_filesystem

    require_privileged("needs a small loop filesystem")
    with loop_filesystem("ext4", "32M", workdir=tmp_path) as mnt:
        config = DriverConfig(home=mnt / "vfs", run_home=tmp_path / "run", graph_root=mnt,
                              run_root=tmp_path / "run")
        drv = VfsDriver(config)
        drv.create("base", None, CreateOpts())
        os.chmod(drv.layer_dir("base"), 0o755)
        (drv.layer_dir("base") / "big").write_bytes(os.urandom(18 << 20))
        with pytest.raises(StorageError) as caught:
            drv.create("child", "base", CreateOpts())
        assert str(caught.value).endswith("no space left on device")
        assert "\n" not in str(caught.value)
        assert drv.list_layers() == ["base"]  # the partial copy is gone
