"""Staged layers on drivers without the capability: Go's ErrNotSupported, nothing left behind."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cs_core.drivers.staging import TarDiffer
from cs_core.errors import NotSupported
from cs_core.store import open_store
from cs_core.testing.tars import layer_tar


def test_vfs_store_api_is_not_supported(tmp_path: Path) -> None:
    store = open_store(graph_root=str(tmp_path / "g"), run_root=str(tmp_path / "r"), driver_name="vfs")
    try:
        with pytest.raises(NotSupported) as info:
            store.prepare_staged_layer(TarDiffer(io.BytesIO(layer_tar([("f", b"f")]))))
        assert str(info.value) == "not supported"
        assert store.layers() == []
        assert not (tmp_path / "g" / "vfs" / "staging").exists()
    finally:
        store.shutdown(force=True)


def test_prune_keeps_held_dirs_and_removes_the_rest(tmp_path: Path) -> None:
    from cs_core.drivers.staging import LOCK_FILE, new_staging_dir, prune_staging_dirs

    base = tmp_path / "staging"
    mine, lock = new_staging_dir(base, 0o755)
    (mine / "dir" / "x").mkdir(parents=True)
    died_early = base / "no-lock-yet"  # its owner died before creating the lock
    died_early.mkdir()
    died_later = base / "unlocked"
    (died_later / "dir").mkdir(parents=True)
    (died_later / LOCK_FILE).touch()
    held = base / "held-elsewhere"
    held.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, os, sys, time\n"
         "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
         "fcntl.lockf(fd, fcntl.LOCK_EX)\nprint(flush=True)\ntime.sleep(60)\n",
         str(held / LOCK_FILE)], stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"\n"
        assert prune_staging_dirs(base) is True  # some remain: held ones
        assert sorted(os.listdir(base)) == sorted([mine.name, "held-elsewhere"])
    finally:
        holder.kill()
        holder.wait()
        assert holder.stdout is not None
        holder.stdout.close()
    assert prune_staging_dirs(base) is True  # ours is still held, by this process
    lock.unlock_and_delete()
    assert prune_staging_dirs(base) is False
    assert os.listdir(base) == []


def test_staged_apply_records_what_put_layer_records(tmp_path: Path) -> None:
    """One ingest path: a gzip blob staged (TarDiffer, apply_staged_layer) and the same blob
    imported (put_layer) read the stream through the same measuring, so their records agree
    on every measured field."""
    import gzip

    from cs_core.store.staged import ApplyStagedLayerOptions
    from cs_core.testing import require_privileged

    require_privileged()
    from cs_overlay.testing import unmount_all_under

    blob = gzip.compress(layer_tar([("etc", None, 0o750), ("etc/app.conf", b"x = 1\n"),
                                    ("bin/tool", b"#!/bin/sh\n" * 100)],
                                   owners={"etc/app.conf": (1000, 1001)}), mtime=0)
    store = open_store(graph_root=str(tmp_path / "g"), run_root=str(tmp_path / "r"),
                       driver_name="overlay")
    try:
        imported = store.put_layer(diff=io.BytesIO(blob))
        staged = store.prepare_staged_layer(TarDiffer(io.BytesIO(blob)))
        applied = store.apply_staged_layer(ApplyStagedLayerOptions(diff_output=staged))

        def measured(layer: object) -> tuple[object, ...]:
            return tuple(getattr(layer, name) for name in (
                "compressed_digest", "compressed_size", "uncompressed_digest",
                "uncompressed_size", "compression", "uidset", "gidset"))

        assert measured(applied) == measured(imported)
        assert imported.compressed_size == len(blob) and imported.uidset == [0, 1000]
        assert imported.gidset == [0, 1001] and imported.compression != 0
    finally:
        store.shutdown(force=True)
        unmount_all_under(tmp_path)
