"""The progress convention (cs_core.progress) on a real store: running totals of the bytes
that cross the API, reported inside large files, ending once with the exact total."""

from __future__ import annotations

import gzip
import io
import os
from pathlib import Path

from cs_core.archive.compression import Compression
from cs_core.images import BlobProgress, export_image
from cs_core.progress import STEP
from cs_core.store import LayerOptions, Store
from cs_core.testing.tars import layer_tar

_BIG = 8 * STEP


def _one_big_file() -> bytes:
    """A tar of one file: the old code reported only between entries, i.e. at the end."""
    return layer_tar([("big.bin", os.urandom(_BIG))])


def _check_totals(calls: list[int], final: int) -> None:
    assert calls, "no progress at all"
    assert calls == sorted(set(calls)), f"totals must grow, never repeat: {calls[-5:]}"
    assert calls[-1] == final, (calls[-1], final)
    assert len(calls) >= _BIG // STEP // 2, f"only {len(calls)} reports for {final} bytes"
    assert max(b - a for a, b in zip([0, *calls], calls, strict=False)) <= 2 * STEP + 65536


def test_put_layer_reports_totals_of_the_compressed_input(vfs_store: Store) -> None:
    data = gzip.compress(_one_big_file(), compresslevel=1, mtime=0)
    calls: list[int] = []
    vfs_store.put_layer(options=LayerOptions(progress=calls.append), diff=io.BytesIO(data))
    _check_totals(calls, len(data))


def test_apply_diff_reports_totals_of_a_plain_tar(vfs_store: Store) -> None:
    data = _one_big_file()
    layer = vfs_store.create_layer()
    calls: list[int] = []
    vfs_store.apply_diff(layer.id, io.BytesIO(data), progress=calls.append)
    _check_totals(calls, len(data))


def test_an_empty_stream_reports_zero_once(vfs_store: Store) -> None:
    calls: list[int] = []
    data = layer_tar([])
    vfs_store.put_layer(options=LayerOptions(progress=calls.append), diff=io.BytesIO(data))
    assert calls == [len(data)]


def test_diff_reports_totals_of_what_it_wrote(vfs_store: Store) -> None:
    layer = vfs_store.put_layer(diff=io.BytesIO(_one_big_file()))
    for kind in (Compression.NONE, Compression.GZIP):
        out = io.BytesIO()
        calls: list[int] = []
        vfs_store.diff(None, layer.id, out, kind, progress=calls.append)
        _check_totals(calls, len(out.getvalue()))


def test_export_image_reports_totals_per_blob(vfs_store: Store, tmp_path: Path) -> None:
    import json

    from cs_core.images.source import sha256_of

    data = _one_big_file()
    layer = vfs_store.put_layer(diff=io.BytesIO(data))
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": [sha256_of(data)]}}).encode()
    digest = sha256_of(config)
    vfs_store.create_image(digest.partition(":")[2], layer=layer.id)
    vfs_store.set_image_big_data(digest.partition(":")[2], digest, config)
    events: list[BlobProgress] = []
    export_image(vfs_store, digest.partition(":")[2], f"oci:{tmp_path / 'out'}",
                 compression="none", progress=events.append)
    _check_totals([e.done for e in events], len(data))
    assert {e.total for e in events} == {len(data)}


def test_import_image_reports_totals_per_blob(vfs_store: Store, tmp_path: Path) -> None:
    import json

    from cs_core.images import import_image
    from cs_core.images.source import sha256_of
    from cs_core.store import open_store

    data = _one_big_file()
    layer = vfs_store.put_layer(diff=io.BytesIO(data))
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": [sha256_of(data)]}}).encode()
    image_id = sha256_of(config).partition(":")[2]
    vfs_store.create_image(image_id, layer=layer.id)
    vfs_store.set_image_big_data(image_id, f"sha256:{image_id}", config)
    exported = export_image(vfs_store, image_id, f"oci:{tmp_path / 'oci'}", compression="gzip")
    blob = tmp_path / "oci" / "blobs" / "sha256" / exported.layer_digests[0].partition(":")[2]
    events: list[BlobProgress] = []
    with open_store(graph_root=str(tmp_path / "g2"), run_root=str(tmp_path / "r2"),
                    driver_name="vfs") as other:
        import_image(other, f"oci:{tmp_path / 'oci'}", ["big"], progress=events.append)
        again: list[BlobProgress] = []
        import_image(other, f"oci:{tmp_path / 'oci'}", ["big"], progress=again.append)
    _check_totals([e.done for e in events], blob.stat().st_size)
    assert {e.total for e in events} == {blob.stat().st_size}
    # A layer the store holds already: one event, complete.
    assert [(e.done, e.total) for e in again] == [(blob.stat().st_size, blob.stat().st_size)]
