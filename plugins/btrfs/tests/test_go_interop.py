"""One btrfs store shared with the Go CLI: each side sees, mounts and deletes the other's layers,
and deletes leave no subvolume behind."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from cs_btrfs import ioctl, native

from cs_core.model import Change
from cs_core.store import Store, open_store
from cs_core.testing.gocli import GoCLI

from .conftest import subvolume_paths

pytestmark = pytest.mark.interop


@pytest.fixture
def go_cli(graph_dir: Path) -> Iterator[GoCLI]:
    cli = GoCLI(graph_dir / "graph", graph_dir / "run", "btrfs")
    yield cli
    cli.run("shutdown", "-f", check=False)


@pytest.fixture
def store(graph_dir: Path) -> Iterator[Store]:
    s = open_store(graph_root=str(graph_dir / "graph"), run_root=str(graph_dir / "run"), driver_name="btrfs")
    yield s
    s.shutdown(force=True)


def _layer_tar(files: dict[str, bytes]) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 1_700_000_000
            tf.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


def _ours(mnt: Path, graph_dir: Path) -> list[str]:
    prefix = str((graph_dir / "graph").relative_to(mnt))
    return [p for p in subvolume_paths(mnt) if p.startswith(prefix + "/")]


def test_we_mount_and_delete_what_go_made(go_cli: GoCLI, graph_dir: Path, btrfs_mount: Path) -> None:
    base = go_cli.out("create-layer").split()[0]
    mnt = Path(go_cli.out("mount", base).strip())
    assert mnt == graph_dir / "graph" / "btrfs" / "subvolumes" / base
    (mnt / "from-go").write_text("go\n")
    go_cli.run("unmount", base)
    image = go_cli.out("create-image", "-n", "go/img", base).split()[0]
    ctr = go_cli.out("create-container", "-n", "goctr", image).split()[0]
    go_cli.run("shutdown", "-f")
    assert len(_ours(btrfs_mount, graph_dir)) == 2

    s = open_store(graph_root=str(graph_dir / "graph"), run_root=str(graph_dir / "run"), driver_name="btrfs")
    try:
        root = Path(s.mount("goctr"))
        assert (root / "from-go").read_text() == "go\n"
        (root / "from-python").write_text("py\n")
        s.unmount("goctr")
        assert [(c.path, c.kind) for c in s.changes(base, s.container(ctr).layer)] == [
            ("/from-python", Change.ADD)]
        s.delete_container(ctr)
        s.delete_image(image)
        assert s.layers() == []
    finally:
        s.shutdown(force=True)
    assert _ours(btrfs_mount, graph_dir) == []


def test_go_mounts_and_deletes_what_we_made(store: Store, go_cli: GoCLI, graph_dir: Path,
                                            btrfs_mount: Path) -> None:
    base = store.put_layer(diff=_layer_tar({"etc/os-release": b"ID=py\n", "bin/sh": b"#!"}))
    child = store.put_layer(parent=base.id, diff=_layer_tar({"etc/motd": b"hello\n"}))
    image = store.create_image(names=["py/img"], layer=child.id)
    store.shutdown(force=True)

    mnt = Path(go_cli.out("mount", child.id).strip())
    assert (mnt / "etc" / "os-release").read_bytes() == b"ID=py\n"
    assert (mnt / "etc" / "motd").read_bytes() == b"hello\n"
    go_cli.run("unmount", child.id)
    # Go's diff of our layer is the tar we applied (tar-split replay from our record).
    with tarfile.open(fileobj=io.BytesIO(go_cli.run("diff", "-u", child.id).stdout)) as tf:
        assert tf.getnames() == ["etc/motd"]
    ctr = go_cli.out("create-container", image.id).split()[0]
    go_cli.run("delete-container", ctr)
    go_cli.run("delete-image", image.id)
    assert go_cli.json("layers") is None or go_cli.json("layers") == []
    go_cli.run("shutdown", "-f")
    assert _ours(btrfs_mount, graph_dir) == []


def _our_cli(graph_dir: Path, *args: str) -> str:
    cmd = [sys.executable, "-m", "cs_core.cli.main", "-g", str(graph_dir / "graph"),
           "-R", str(graph_dir / "run"), "-s", "btrfs", *args]
    proc = subprocess.run(cmd, capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()
    return proc.stdout.decode()


def test_both_clis_on_one_store(go_cli: GoCLI, graph_dir: Path, btrfs_mount: Path) -> None:
    tar = graph_dir / "layer.tar"
    tar.write_bytes(_layer_tar({"usr/share/doc": b"docs\n", "etc/hostname": b"box\n"}).getvalue())
    try:
        ours = _our_cli(graph_dir, "import-layer", "-f", str(tar)).split()[-1]
        theirs = go_cli.out("import-layer", "-f", str(tar)).split()[-1]
        assert _our_cli(graph_dir, "diff", "-u", ours) == go_cli.out("diff", "-u", theirs)
        # Both CLIs list the same records.
        assert sorted(x["id"] for x in json.loads(_our_cli(graph_dir, "layers", "--json"))) == \
            sorted(x["id"] for x in go_cli.json("layers"))
        img = _our_cli(graph_dir, "create-image", ours).split()[0]
        ctr = go_cli.out("create-container", img).split()[0]
        mnt = Path(_our_cli(graph_dir, "mount", ctr).strip())
        assert (mnt / "etc" / "hostname").read_text() == "box\n"
        (mnt / "new").write_text("x")
        _our_cli(graph_dir, "unmount", ctr)
        layer = next(c["layer"] for c in go_cli.json("containers") if c["id"] == ctr)
        assert "/new" in go_cli.out("changes", layer)
        assert _our_cli(graph_dir, "changes", layer) == go_cli.out("changes", layer)
        go_cli.run("delete-container", ctr)
        _our_cli(graph_dir, "delete-image", img)
        go_cli.run("delete-layer", theirs)
        assert go_cli.json("layers") in (None, [])
    finally:
        _our_cli(graph_dir, "shutdown", "-f")
    go_cli.run("shutdown", "-f")
    assert _ours(btrfs_mount, graph_dir) == []


def test_native_changes_agree_with_go(store: Store, go_cli: GoCLI, graph_dir: Path) -> None:
    import time

    from .test_native import _edit_everything, _populate

    base = store.create_layer()
    _populate(Path(store.mount(base.id)))
    store.unmount(base.id)
    time.sleep(0.05)  # past the clock tick of the last parent write (see test_native)
    image = store.create_image(layer=base.id)
    ctr = store.create_container(image=image.id)
    _edit_everything(Path(store.mount(ctr.id)))
    store.unmount(ctr.id)
    drv = store.driver
    with ioctl.open_dir(drv.layer_dir(ctr.layer)) as c, ioctl.open_dir(drv.layer_dir(base.id)) as p:
        assert native.usable(c, p) is not None
    ours = _our_cli(graph_dir, "changes", ctr.layer)
    # Go walks maps, so its order varies from run to run; the set is what must agree.
    assert sorted(ours.splitlines()) == sorted(go_cli.out("changes", ctr.layer).splitlines())
    assert len(ours.splitlines()) > 20
