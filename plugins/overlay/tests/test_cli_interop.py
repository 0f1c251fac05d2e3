"""Our containers-storage CLI and Go's on one overlay store: same records, bytes and changes."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from cs_overlay.testing import unmount_all_under

from cs_core.testing import go_cli_path, require_privileged
from cs_core.testing.gocli import GoCLI

pytestmark = pytest.mark.interop


class OurCLI:
    def __init__(self, graph: Path, run: Path) -> None:
        self.base = [sys.executable, "-m", "cs_core.cli.main", "-g", str(graph), "-R", str(run),
                     "-s", "overlay"]

    def run(self, *args: str) -> bytes:
        proc = subprocess.run([*self.base, *args], capture_output=True, timeout=120)
        assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()
        return proc.stdout

    def out(self, *args: str) -> str:
        return self.run(*args).decode()


@pytest.fixture
def clis(tmp_path: Path) -> Iterator[tuple[OurCLI, GoCLI, Path]]:
    require_privileged()
    go_cli_path()
    graph, run = tmp_path / "graph", tmp_path / "run"
    ours, go = OurCLI(graph, run), GoCLI(graph, run, "overlay")
    try:
        yield ours, go, tmp_path
    finally:
        # not Go's "shutdown -f": 1.43 loops forever when a layer is still mounted
        try:
            subprocess.run([*ours.base, "shutdown", "-f"], capture_output=True, timeout=120)
        finally:
            unmount_all_under(tmp_path)


def layer_tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 1_700_000_000
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_both_clis_on_one_overlay_store(clis: tuple[OurCLI, GoCLI, Path]) -> None:
    ours, go, tmp = clis
    tar = tmp / "layer.tar"
    tar.write_bytes(layer_tar({"etc/hostname": b"box\n", "etc/motd": b"hi\n", "bin/tool": b"t"}))
    mine = ours.out("import-layer", "-f", str(tar)).split()[-1]
    theirs = go.out("import-layer", "-f", str(tar)).split()[-1]
    assert ours.run("diff", "-u", mine) == go.run("diff", "-u", theirs).stdout
    assert sorted(x["id"] for x in json.loads(ours.out("layers", "--json"))) == \
        sorted(x["id"] for x in go.json("layers"))
    home = tmp / "graph" / "overlay"
    assert len((home / mine / "link").read_text()) == len((home / theirs / "link").read_text()) == 26

    # a container Go creates on our image, written through our mount, diffed natively by both
    img = ours.out("create-image", mine).split()[0]
    ctr = go.out("create-container", img).split()[0]
    mnt = Path(ours.out("mount", ctr).strip())
    (mnt / "etc" / "motd").unlink()
    (mnt / "new").write_text("x")
    ours.run("unmount", ctr)
    layer = next(c["layer"] for c in go.json("containers") if c["id"] == ctr)
    assert ours.out("changes", layer) == go.out("changes", layer)
    assert 'Delete "/etc/motd"' in go.out("changes", layer)
    assert ours.run("diff", "-u", layer) == go.run("diff", "-u", layer).stdout
    # Go's mount of the same container sees our writes
    gm = Path(go.out("mount", ctr).strip())
    try:
        assert (gm / "new").read_text() == "x" and not (gm / "etc" / "motd").exists()
    finally:
        go.run("unmount", ctr)

    go.run("delete-container", ctr)
    ours.run("delete-image", img)
    go.run("delete-layer", theirs)
    assert go.json("layers") in (None, [])
    assert os.listdir(home / "l") == []
