"""A store on a small loopback ext4 that is filled to the last block.

Creates and applies must fail with ENOSPC and leave the store exactly as it was (records, big
data, driver layers; ``check`` clean); deletes must still work so that a user can free space,
which needs the store's space reserve (see cs_core.atomic) because every bookkeeping write
makes a new file before the old one goes.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cs_core.errors import StorageError
from cs_core.store import ImageOptions, Store, open_store
from cs_core.store.check import CheckOptions

MB = 1 << 20


def layer_tar(files: int, size: int, seed: int) -> bytes:
    buf = io.BytesIO()
    data = (seed.to_bytes(4, "big") * (size // 4 + 1))[:size]
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for i in range(files):
            info = tarfile.TarInfo(f"dir{seed}/file{i}")
            info.size, info.mtime = size, 1_700_000_000
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def fill(mountpoint: Path) -> None:
    """Take every free block (root may use ext4's reserved blocks too, so take them all)."""
    n = 0
    for chunk in (MB, 4096, 512):
        while True:
            try:
                with open(mountpoint / f"filler-{n}", "wb") as f:
                    f.write(b"\0" * chunk)
                    f.flush()
                    os.fsync(f.fileno())
                n += 1
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                with contextlib.suppress(OSError):
                    os.unlink(mountpoint / f"filler-{n}")
                break
    st = os.statvfs(mountpoint)
    assert st.f_bavail * st.f_frsize < 64 * 1024


def state(store: Store) -> dict[str, Any]:
    """Everything a user could observe, for before/after comparisons."""
    return {
        "layers": sorted((x.id, x.parent, tuple(x.names), x.uncompressed_digest,
                          tuple(x.big_data_names)) for x in store.layers()),
        "images": sorted((x.id, x.top_layer, tuple(x.names),
                          tuple(sorted((k, store.image_big_data(x.id, k))
                                       for k in x.big_data_names))) for x in store.images()),
        "containers": sorted((x.id, x.layer, tuple(x.names)) for x in store.containers()),
        "driver": sorted(store.storage_layers()),
    }


@pytest.fixture
def full_store(driver_name: str) -> Iterator[tuple[Store, Path, dict[str, str]]]:
    from cs_core.testing import require_privileged
    from cs_core.testing.loopfs import loop_filesystem

    require_privileged("loop devices need root")
    with loop_filesystem("ext4", "64M") as mnt:
        store = open_store(graph_root=str(mnt / "graph"), run_root=str(mnt / "run"),
                           driver_name=driver_name)
        try:
            base = store.put_layer(diff=io.BytesIO(layer_tar(4, 256 * 1024, 1)))
            image = store.create_image(names=["full:1"], layer=base.id,
                                       options=ImageOptions(big_data={"manifest": b"{}" * 1000}))
            container = store.create_container(names=["c1"], image=image.id)
            empty = store.create_layer(names=["empty"])
            ids = {"base": base.id, "image": image.id, "container": container.id,
                   "empty": empty.id}
            fill(mnt)
            yield store, mnt, ids
        finally:
            for leftover in mnt.glob("filler-*"):
                leftover.unlink()
            store.shutdown(True)


def assert_no_space(exc_info: pytest.ExceptionInfo[BaseException]) -> None:
    """ENOSPC as an OSError, or a driver's one-line StorageError saying so."""
    exc = exc_info.value
    if isinstance(exc, OSError):
        assert exc.errno == errno.ENOSPC, repr(exc)
    else:
        assert isinstance(exc, StorageError), repr(exc)
        assert "no space left on device" in str(exc).lower() and "\n" not in str(exc)


def test_creates_fail_cleanly_and_deletes_still_work(
        full_store: tuple[Store, Path, dict[str, str]]) -> None:
    store, _mnt, ids = full_store
    before = state(store)
    big = layer_tar(3, 2 * MB, 7)
    with pytest.raises((OSError, StorageError)) as exc_info:
        store.put_layer(parent=ids["base"], names=["new"], diff=io.BytesIO(big))
    assert_no_space(exc_info)
    assert state(store) == before
    with pytest.raises((OSError, StorageError)) as exc_info:
        store.apply_diff(ids["empty"], io.BytesIO(big))
    assert_no_space(exc_info)
    assert state(store) == before
    with pytest.raises((OSError, StorageError)) as exc_info:
        store.set_image_big_data(ids["image"], "manifest", b"x" * (3 * MB))
    assert_no_space(exc_info)
    assert state(store) == before
    with pytest.raises((OSError, StorageError)) as exc_info:
        store.create_image(names=["full:2"], layer=ids["base"],
                           options=ImageOptions(big_data={"config": b"y" * (3 * MB)}))
    assert_no_space(exc_info)
    assert state(store) == before
    assert store.check(CheckOptions.everything()).empty()
    # A fresh process sees the same (no half-written leftovers to clean up).
    again = open_store(graph_root=str(store.graph_root), run_root=str(store.run_root),
                       driver_name=store.driver_name)
    assert state(again) == before
    # Now free space the way a user would.
    store.delete_container(ids["container"])
    assert store.delete_image(ids["image"]) == [ids["base"]]
    store.delete_layer(ids["empty"])
    assert state(store) == {"layers": [], "images": [], "containers": [], "driver": []}
    assert store.check(CheckOptions.everything()).empty()


def test_delete_on_a_disk_full_from_the_start(
        full_store: tuple[Store, Path, dict[str, str]]) -> None:
    """Nothing failed first to free a little: the reserve alone lets deletes record themselves."""
    store, mnt, ids = full_store
    assert (store.graph_root / ".cs-space-reserve").exists()
    store.delete_container(ids["container"])
    store.delete_image(ids["image"])
    store.delete_layer(ids["empty"])
    assert state(store)["layers"] == []
    assert store.check(CheckOptions.everything()).empty()
    # The reserve is re-made the next time a store is opened with room for it.
    for leftover in mnt.glob("filler-*"):
        leftover.unlink()
    open_store(graph_root=str(store.graph_root), run_root=str(store.run_root),
               driver_name=store.driver_name)
    assert (store.graph_root / ".cs-space-reserve").stat().st_size == 1 << 20
