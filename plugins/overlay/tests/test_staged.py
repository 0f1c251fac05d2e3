"""Staged layers on overlay: content filled in a locked staging dir, then swapped into a layer."""

from __future__ import annotations

import hashlib
import io
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from cs_overlay.testing import unmount_all_under

from cs_core.drivers.staging import LOCK_FILE, TarDiffer
from cs_core.store import Store, open_store
from cs_core.store.staged import ApplyStagedLayerOptions
from cs_core.testing import go_cli_path, require_privileged
from cs_core.testing.gocli import GoCLI
from cs_core.testing.tars import layer_tar


@pytest.fixture
def roots(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    require_privileged()
    try:
        yield tmp_path / "graph", tmp_path / "run"
    finally:
        unmount_all_under(tmp_path)


@pytest.fixture
def store(roots: tuple[Path, Path]) -> Iterator[Store]:
    s = open_store(graph_root=str(roots[0]), run_root=str(roots[1]), driver_name="overlay")
    try:
        yield s
    finally:
        s.shutdown(force=True)


def _locked_elsewhere(lock: Path) -> bool:
    """Whether another process holds ``lock`` (our own holds never exclude us)."""
    probe = ("import fcntl, os, sys\nfd = os.open(sys.argv[1], os.O_RDWR)\n"
             "try:\n    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\nexcept OSError:\n"
             "    sys.exit(3)\n")
    return subprocess.run([sys.executable, "-c", probe, str(lock)], timeout=60).returncode == 3


def test_staged_layer_content_metadata_and_diff(store: Store) -> None:
    base = store.put_layer(diff=io.BytesIO(layer_tar([("keep", b"k"), ("gone", b"g")])))
    blob = layer_tar([("etc", None, 0o750), ("etc/app.conf", b"x = 1\n"), (".wh.gone", b""),
                      ("bin", None), ("bin/tool", b"#!/bin/sh\n" * 100)],
                     owners={"etc/app.conf": (1000, 1001)})

    staged = store.prepare_staged_layer(TarDiffer(io.BytesIO(blob)))
    staging = staged.target.parent
    assert staging.parent == store.graph_root / "overlay" / "staging"
    assert (staged.target / "etc" / "app.conf").read_bytes() == b"x = 1\n"
    assert _locked_elsewhere(staging / LOCK_FILE)  # in use: no other process may prune it

    layer = store.apply_staged_layer(ApplyStagedLayerOptions(
        diff_output=staged, parent_layer=base.id, names=["staged"]))
    assert not staging.exists()
    assert layer.parent == base.id and layer.names == ["staged"]
    assert layer.uncompressed_digest == "sha256:" + hashlib.sha256(blob).hexdigest()
    assert layer.compressed_digest == layer.uncompressed_digest  # the blob was not compressed
    assert layer.uncompressed_size == len(blob)
    assert (layer.uidset, layer.gidset) == ([0, 1000], [0, 1001])
    assert store.layer("staged").uidset == [0, 1000]  # recorded, not just returned

    diff = store.driver.layer_dir(layer.id)
    assert os.stat(diff / "etc" / "app.conf").st_uid == 1000
    assert os.stat(diff).st_mode & 0o7777 == os.stat(store.driver.layer_dir(base.id)).st_mode & 0o7777
    out = io.BytesIO()
    store.diff(None, layer.id, out)
    assert out.getvalue() == blob  # replayed from the tar-split, byte for byte
    root = Path(store.mount(layer.id))
    try:
        assert sorted(os.listdir(root)) == ["bin", "etc", "keep"]
    finally:
        store.unmount(layer.id)


def test_cleanup_discards_staged_content(store: Store) -> None:
    staged = store.prepare_staged_layer(TarDiffer(io.BytesIO(layer_tar([("f", b"f")]))))
    store.cleanup_staged_layer(staged)
    assert not staged.target.parent.exists()
    assert store.layers() == []


_STAGE_AND_WAIT = textwrap.dedent('''
    import io, sys, time
    from cs_core.drivers.staging import TarDiffer
    from cs_core.store import open_store
    s = open_store(graph_root=sys.argv[1], run_root=sys.argv[2], driver_name="overlay")
    staged = s.prepare_staged_layer(TarDiffer(open(sys.argv[3], "rb")))
    print(staged.target.parent, flush=True)
    time.sleep(600)
''')


def _stage_in_child(roots: tuple[Path, Path], blob: Path) -> tuple[subprocess.Popen[str], Path]:
    child = subprocess.Popen([sys.executable, "-c", _STAGE_AND_WAIT, str(roots[0]), str(roots[1]),
                              str(blob)], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    line = child.stdout.readline().strip()
    assert line, "the child died before staging"
    return child, Path(line)


def _kill(child: subprocess.Popen[str]) -> None:
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=60)
    assert child.stdout is not None
    child.stdout.close()


def test_kill_between_prepare_and_apply(roots: tuple[Path, Path], tmp_path: Path) -> None:
    blob = tmp_path / "layer.tar"
    blob.write_bytes(layer_tar([("data", os.urandom(1 << 16))]))
    first, staging1 = _stage_in_child(roots, blob)
    try:
        store = open_store(graph_root=str(roots[0]), run_root=str(roots[1]), driver_name="overlay")
        try:
            assert staging1.is_dir()  # held by a live process: opening did not prune it
            _kill(first)
            assert staging1.is_dir()
        finally:
            store.shutdown(force=True)
    finally:
        if first.returncode is None:
            _kill(first)
    assert not staging1.exists()  # stale: shutdown pruned it

    second, staging2 = _stage_in_child(roots, blob)
    _kill(second)
    store = open_store(graph_root=str(roots[0]), run_root=str(roots[1]), driver_name="overlay")
    try:
        assert not staging2.exists()  # stale: the next open pruned it
        assert store.layers() == []
        assert not store.check().layers
        assert os.listdir(roots[0] / "overlay" / "staging") == []
    finally:
        store.shutdown(force=True)


@pytest.mark.interop
def test_cli_staged_apply_read_by_go(roots: tuple[Path, Path], tmp_path: Path) -> None:
    go_cli_path()
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a").write_bytes(b"hello\n")
    (src / "sub" / "b").write_bytes(os.urandom(5000))
    os.chown(src / "a", 1000, 1000)
    graph, run = roots
    ours = [sys.executable, "-m", "cs_core", "-g", str(graph), "-R", str(run), "-s", "overlay"]
    go = GoCLI(graph, run, "overlay")
    try:
        layer = go.out("create-layer").strip()
        proc = subprocess.run([*ours, "applydiff-using-staging-dir", layer, str(src)],
                              capture_output=True, text=True, timeout=120)
        assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")
        record = go.json("layer", layer)[0]
        assert record["uidset"] == [0, 1000]
        ours_diff = subprocess.run([*ours, "diff", "-u", layer], capture_output=True, timeout=120)
        assert ours_diff.returncode == 0
        assert "sha256:" + hashlib.sha256(ours_diff.stdout).hexdigest() == record["diff-digest"]
        assert go.run("diff", "-u", layer).stdout == ours_diff.stdout
        mnt = Path(go.out("mount", layer).strip())
        assert (mnt / "a").read_bytes() == b"hello\n"
        assert (mnt / "sub" / "b").read_bytes() == (src / "sub" / "b").read_bytes()
        go.run("unmount", layer)
    finally:
        subprocess.run([*ours, "shutdown", "-f"], capture_output=True, timeout=120)
