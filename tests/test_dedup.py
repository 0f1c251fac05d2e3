"""Store.dedup and the dedup command on real filesystems: btrfs shares extents, ext4 cannot."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from cs_core.store import Store, open_store

MIB = 1 << 20


def _layer_tar(files: dict[str, bytes]) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


@pytest.fixture
def loop_root(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path]:
    from cs_core.testing import require_privileged
    from cs_core.testing.loopfs import loop_filesystem

    require_privileged("loop filesystems need root")
    with loop_filesystem(request.param, "1G", workdir=tmp_path) as mnt:
        yield mnt


def _store_with_twins(root: Path) -> tuple[Store, bytes]:
    """Two images whose layers hold the same 2 MiB file, and an orphan layer holding it too."""
    store = open_store(graph_root=str(root / "graph"), run_root=str(root / "run"),
                       driver_name="vfs")
    payload = os.urandom(2 * MIB)
    for n in (1, 2):
        layer = store.put_layer(diff=_layer_tar({"big.bin": payload, f"own{n}": os.urandom(4096)}))
        store.create_image(names=[f"img{n}"], layer=layer.id)
    store.put_layer(diff=_layer_tar({"orphan.bin": payload}))  # no image uses it
    return store, payload


@pytest.mark.parametrize("loop_root", ["btrfs"], indirect=True)
def test_dedup_shares_identical_files_on_btrfs(loop_root: Path) -> None:
    store, payload = _store_with_twins(loop_root)
    try:
        # Only the two image layers count: one copy of the payload is shared with the other.
        assert store.dedup("sha256") == len(payload)
        assert store.dedup("size") == len(payload)  # the kernel re-verifies, so size is safe
        for image in store.images():
            path = store.driver.layer_dir(image.top_layer) / "big.bin"
            assert path.read_bytes() == payload
    finally:
        store.shutdown(force=True)


@pytest.mark.parametrize("loop_root", ["btrfs"], indirect=True)
def test_dedup_command_json_and_text(loop_root: Path) -> None:
    store, payload = _store_with_twins(loop_root)
    store.shutdown(force=True)
    base = [sys.executable, "-m", "cs_core", "-g", str(loop_root / "graph"),
            "-R", str(loop_root / "run"), "-s", "vfs", "dedup"]
    text = subprocess.run(base, capture_output=True, text=True, check=True)
    assert text.stdout == f"Deduplicated {len(payload)} bytes\n"
    js = subprocess.run([*base, "--json", "--hash-method", "size"], capture_output=True,
                        text=True, check=True)
    assert js.stdout.strip() == f'{{"Deduped":{len(payload)}}}'
    bad = subprocess.run([*base, "--hash-method", "md5"], capture_output=True, text=True)
    assert bad.returncode == 1 and bad.stderr == "invalid hash method: md5\n"


@pytest.mark.parametrize("loop_root", ["ext4"], indirect=True)
def test_dedup_on_ext4_reports_nothing(loop_root: Path) -> None:
    store, _payload = _store_with_twins(loop_root)
    try:
        assert store.dedup("crc") == 0
    finally:
        store.shutdown(force=True)
