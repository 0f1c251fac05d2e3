"""An import holds no store lock while it extracts (issue 13 item 4), on every driver.

A real ``import-layer`` process reads its tar from a FIFO that the test holds open mid-stream,
so the importer is stuck inside extraction; meanwhile this process takes every store lock
(Go's fcntl locks, with a timeout) and another CLI process creates a layer and mounts one.
Then the stream is finished and the imported layer must be whole. A killed import must
leave nothing behind: no layer, no staged tree.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cs_core.store import Store, open_store
from cs_core.testing.loopfs import driver_home
from cs_core.testing.tars import layer_tar

MARKER = "first-of-the-import"
DEADLINE = 20.0  # generous: the machine is shared with other test suites
HELD_BACK = 3 << 20  # bytes of the 4 MiB stream written before the test stops feeding it


@pytest.fixture(params=["vfs", "overlay", "btrfs"])
def home(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    with driver_home(request.param, tmp_path) as root:
        yield request.param, root


def _tar() -> bytes:
    # The marker is extracted from the first chunk; the big file keeps the rest pending.
    return layer_tar([(MARKER, b"m" * 100), ("dir", None), ("dir/big", os.urandom(4 << 20))])


def _cli(driver: str, root: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "cs_core", "-g", str(root / "g"), "-R", str(root / "r"),
            "-s", driver, *args]


def _store(driver: str, root: Path) -> Store:
    return open_store(graph_root=str(root / "g"), run_root=str(root / "r"), driver_name=driver)


def _lock_files(driver: str, root: Path) -> list[Path]:
    g, r = root / "g", root / "r"
    return [g / "storage.lock", g / f"{driver}-layers" / "layers.lock",
            g / f"{driver}-images" / "images.lock", g / f"{driver}-containers" / "containers.lock",
            r / f"{driver}-layers" / "mountpoints.lock"]


def _take_within(path: Path, timeout: float) -> bool:
    """Whether this process gets ``path``'s exclusive fcntl lock within ``timeout`` seconds."""
    fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    try:
        end = time.monotonic() + timeout
        while True:
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except OSError:
                if time.monotonic() > end:
                    return False
                time.sleep(0.02)
    finally:
        os.close(fd)  # drops the lock


def _wait_for_marker(root: Path, importer: subprocess.Popen[bytes]) -> None:
    """Until the importer has extracted the marker (wherever its driver puts it)."""
    end = time.monotonic() + DEADLINE
    while time.monotonic() < end:
        assert importer.poll() is None, importer.communicate()
        for _dirpath, _dirs, files in os.walk(root / "g"):
            if MARKER in files:
                return
        time.sleep(0.05)
    pytest.fail("the importer never started extracting")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _start_import(driver: str, root: Path, parent: str) -> tuple[subprocess.Popen[bytes], int, bytes]:
    fifo = root / "stream"
    os.mkfifo(fifo)
    importer = subprocess.Popen(_cli(driver, root, "import-layer", "-n", "pulled", "-f", str(fifo),
                                     parent), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    writer = os.open(fifo, os.O_WRONLY)  # blocks until the importer opens it
    data = _tar()
    # The marker and most of the big file: the reader's 1 MiB reads then wait for the rest.
    _write_all(writer, data[:HELD_BACK])
    _wait_for_marker(root, importer)
    return importer, writer, data


def test_import_holds_no_lock_while_extracting(home: tuple[str, Path]) -> None:
    driver, root = home
    store = _store(driver, root)
    try:
        parent = store.create_layer(names=["base"]).id
        other = store.create_layer(parent=parent).id
    finally:
        store.shutdown(True)
    importer, writer, data = _start_import(driver, root, parent)
    try:
        held = [str(p) for p in _lock_files(driver, root) if not _take_within(p, 3.0)]
        assert held == [], f"locks held across the extraction: {held}"
        for args in (("create-layer", parent), ("mount", other), ("unmount", other)):
            proc = subprocess.run(_cli(driver, root, *args), capture_output=True, text=True,
                                  timeout=DEADLINE)
            assert proc.returncode == 0, proc.stderr
        assert importer.poll() is None, "the import finished before its stream did"
        _write_all(writer, data[HELD_BACK:])
    finally:
        os.close(writer)
    out, err = importer.communicate(timeout=120)
    assert importer.returncode == 0, err
    store = _store(driver, root)
    try:
        layer = store.layer("pulled")
        assert layer.id == out.decode().split()[0] and layer.parent == parent
        assert layer.uncompressed_size == len(data)
        assert {c.path for c in store.changes(None, layer.id)} >= {f"/{MARKER}", "/dir/big"}
        assert store.check().empty()
    finally:
        store.shutdown(True)
    assert not list((root / "g" / driver / "staging").glob("*")), "staged tree left behind"


def test_killed_import_leaves_nothing(home: tuple[str, Path]) -> None:
    driver, root = home
    store = _store(driver, root)
    try:
        parent = store.create_layer().id
    finally:
        store.shutdown(True)
    importer, writer, _data = _start_import(driver, root, parent)
    importer.send_signal(signal.SIGKILL)
    importer.wait()
    os.close(writer)
    store = _store(driver, root)
    try:
        assert [x.id for x in store.layers()] == [parent]
        assert store.storage_layers() == [parent]
        assert store.check().empty()
    finally:
        store.shutdown(True)
    assert not list((root / "g" / driver / "staging").glob("*")), "staged tree left behind"
