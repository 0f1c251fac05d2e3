"""What one implementation leaves on disk that the other must live with: records Go 1.43 keeps
in its files, and temp files of a write that was killed half-way."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from cs_core.drivers.staging import STAGING_DIR, TAR_SPLIT_FILE
from cs_core.store import ContainerOptions, Store
from cs_core.testing.gocli import GoCLI

pytestmark = pytest.mark.interop


def test_go_volatile_container_stays_in_containers_json(
        make_store: Callable[[], Store], go_cli: GoCLI, driver_name: str) -> None:
    # Go 1.43 keeps a --volatile container in containers.json (it has no volatile file);
    # after our writes it must still be there, or 1.43 loses track of it.
    image = go_cli.out("create-image").split()[0]
    volatile = go_cli.out("create-container", "--volatile", image).split()[0]
    s = make_store()
    assert s.container(volatile).volatile
    ours = s.create_container(image=image)
    s.add_names(volatile, ["renamed"])
    assert {c["id"] for c in go_cli.json("containers")} == {volatile, ours.id}
    assert go_cli.out("get-names", volatile).split() == ["renamed"]
    stable = s.graph_root / f"{driver_name}-containers" / "containers.json"
    assert volatile in {c["id"] for c in json.loads(stable.read_text())}
    # Only containers created volatile go to the volatile file, as at HEAD.
    made_volatile = s.create_container(image=image, options=ContainerOptions(volatile=True))
    volatile_file = stable.with_name("volatile-containers.json")
    assert [c["id"] for c in json.loads(volatile_file.read_text())] == [made_volatile.id]


def _big_file_tar(size: int) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("big")
        info.size = size
        tar.addfile(info, io.BytesIO(os.urandom(size)))
    return buf.getvalue()


def _temporaries(layers_dir: Path) -> list[Path]:
    return list(layers_dir.rglob(".tmp-*"))


def _staged_tar_splits(graph: Path, driver: str) -> list[Path]:
    return list((graph / driver / STAGING_DIR).glob(f"*/{TAR_SPLIT_FILE}"))


def _killed_import(graph: Path, run: Path, driver: str) -> list[str]:
    """Start our import-layer, feed it part of a tar, SIGKILL it while it writes the layer;
    return the layers it left recorded as incomplete."""
    layers_dir = graph / f"{driver}-layers"
    data = _big_file_tar(4 << 20)
    proc = subprocess.Popen(
        [sys.executable, "-m", "cs_core", "-g", str(graph), "-R", str(run), "-s", driver,
         "import-layer"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    assert proc.stdin is not None
    try:
        proc.stdin.write(data[: 1 << 20])
        proc.stdin.flush()
        deadline = time.monotonic() + 60
        # An import extracts into a staged tree with no lock held (cs_core.store.layer_import); the
        # locked path writes its tar-split beside the records: either means it is mid-stream.
        while not (any("tar-split" in p.name for p in _temporaries(layers_dir))
                   or _staged_tar_splits(graph, driver)):
            assert proc.poll() is None, "import-layer ended before it was killed"
            assert time.monotonic() < deadline, "import-layer never started its tar-split"
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdin.close()
    record_file = layers_dir / "layers.json"  # absent: nothing was ever recorded
    records = json.loads(record_file.read_text()) if record_file.exists() else []
    return [str(r["id"]) for r in records if r.get("flags", {}).get("incomplete")]


@pytest.mark.parametrize("cleaner", ["go", "us"])
def test_killed_import_leaves_nothing_once_cleaned_up(
        store_roots: tuple[Path, Path], go_cli: GoCLI, make_store: Callable[[], Store],
        driver_name: str, cleaner: str) -> None:
    graph, run = store_roots
    make_store()  # an initialised store
    incomplete = _killed_import(graph, run, driver_name)
    assert len(incomplete) <= 1
    if cleaner == "go":
        go_cli.run("layers")  # Go deletes an incomplete layer when it opens the store
        assert go_cli.json("layers") in (None, [])
    else:
        assert make_store().layers() == []
        assert _staged_tar_splits(graph, driver_name) == []  # our driver prunes its staging
    layers_dir = graph / f"{driver_name}-layers"
    assert _temporaries(layers_dir) == []
    for layer in incomplete:
        assert not (layers_dir / layer).exists()
        assert not (layers_dir / f"{layer}.tar-split.gz").exists()


def test_our_open_removes_stale_temporaries(make_store: Callable[[], Store],
                                            driver_name: str) -> None:
    s = make_store()
    kept = s.create_layer()
    layers_dir = s.graph_root / f"{driver_name}-layers"
    stale = [layers_dir / f".tmp-{kept.id}.tar-split.gz123", layers_dir / ".tmp-layers.json456"]
    for path in stale:
        path.write_bytes(b"half-written")
    s.shutdown()
    reopened = make_store()
    assert [p for p in stale if p.exists()] == []
    assert [x.id for x in reopened.layers()] == [kept.id]
    assert (layers_dir / "layers.json").exists()
