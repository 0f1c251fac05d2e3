"""Byte-identical round trips through a store: ours of ours, ours of Go's, Go's of ours."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import zstandard

from cs_core.archive.compression import Compression, decompress_stream
from cs_core.drivers.plugins import PluginRegistry
from cs_core.testing import go_cli_path, require_privileged, requires_command

KINDS = {
    "plain": lambda b: b,
    "gzip": gzip.compress,
    "zstd": lambda b: zstandard.ZstdCompressor().compress(b),
}


def _drivers() -> list[str]:
    return [d for d in ("vfs", "overlay") if _available(d)] or ["vfs"]


def _available(name: str) -> bool:
    try:
        PluginRegistry().driver_class(name)
    except Exception:
        return False
    return True


def _layer_tar(tmp: Path) -> bytes:
    src = tmp / "src"
    (src / "usr" / "bin").mkdir(parents=True)
    (src / "usr" / "bin" / "tool").write_bytes(os.urandom(200_000))
    (src / "etc").mkdir()
    (src / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    os.symlink("usr/bin", src / "bin")
    os.link(src / "etc" / "passwd", src / "etc" / "passwd-")
    os.chown(src / "etc" / "passwd", 0, 42)
    out = tmp / "layer.tar"
    subprocess.run(["tar", "--format=pax", "-C", str(src), "-cf", str(out), "."], check=True)
    return out.read_bytes()


@pytest.fixture(params=_drivers())
def roots(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Path, Path]]:
    require_privileged("stores chown and mount")
    requires_command("tar")
    yield request.param, tmp_path / "graph", tmp_path / "run"


def _open(driver: str, graph: Path, run: Path):  # type: ignore[no-untyped-def]
    from cs_core.store import open_store

    return open_store(graph_root=str(graph), run_root=str(run), driver_name=driver)


def _go(driver: str, graph: Path, run: Path, *args: str) -> bytes:
    return subprocess.run(
        [go_cli_path(), "-g", str(graph), "-R", str(run), "-s", driver, *args], check=True,
        capture_output=True,
    ).stdout


@pytest.mark.parametrize("kind", list(KINDS))
def test_our_diff_of_our_layer(roots: tuple[str, Path, Path], kind: str, tmp_path: Path) -> None:
    driver, graph, run = roots
    tar = _layer_tar(tmp_path)
    packed = KINDS[kind](tar)
    store = _open(driver, graph, run)
    try:
        layer = store.put_layer(diff=io.BytesIO(packed))
        assert layer.uncompressed_digest == "sha256:" + hashlib.sha256(tar).hexdigest()
        assert layer.compressed_digest == "sha256:" + hashlib.sha256(packed).hexdigest()
        assert layer.compressed_size == len(packed) and layer.uncompressed_size == len(tar)
        assert layer.compression == int(
            {"plain": Compression.NONE, "gzip": Compression.GZIP, "zstd": Compression.ZSTD}[kind]
        )
        assert layer.uidset == [0] and layer.gidset == [0, 42]
        out = io.BytesIO()
        store.diff(None, layer.id, out, compression=Compression.NONE)
        assert hashlib.sha256(out.getvalue()).digest() == hashlib.sha256(tar).digest()
        out = io.BytesIO()
        store.diff(None, layer.id, out)  # recompressed with the layer's own compression
        _, plain = decompress_stream(io.BytesIO(out.getvalue()))  # type: ignore[arg-type]
        assert plain.read() == tar
    finally:
        store.shutdown(force=True)
        store.close()


@pytest.mark.interop
@pytest.mark.parametrize("kind", list(KINDS))
def test_go_diff_of_our_layer_and_ours_of_gos(
    roots: tuple[str, Path, Path], kind: str, tmp_path: Path
) -> None:
    go_cli_path()
    driver, graph, run = roots
    tar = _layer_tar(tmp_path)
    (tmp_path / "in").write_bytes(KINDS[kind](tar))
    store = _open(driver, graph, run)
    try:
        ours = store.put_layer(diff=io.BytesIO((tmp_path / "in").read_bytes()))
    finally:
        store.shutdown(force=True)
        store.close()
    assert _go(driver, graph, run, "diff", "-u", ours.id) == tar
    go_id = _go(driver, graph, run, "import-layer", "-f", str(tmp_path / "in")).decode().split()[-1]
    store = _open(driver, graph, run)
    try:
        out = io.BytesIO()
        store.diff(None, go_id, out, compression=Compression.NONE)
        assert out.getvalue() == tar
        assert store.layer(go_id).uidset == store.layer(ours.id).uidset
        assert store.layer(go_id).compressed_digest == store.layer(ours.id).compressed_digest
    finally:
        store.shutdown(force=True)
        store.close()
