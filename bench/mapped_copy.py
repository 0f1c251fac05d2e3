"""ID-mapped copy of an image's top layer: the driver's template copy against diff + re-apply.

Run as root: ``/work/venv/bin/python bench/mapped_copy.py [--files 5000] [--runs 3]``.

For each of vfs on a journaled ext4 loop file, vfs on a btrfs loop file and btrfs, on a fresh
store holding a base layer and a top layer of ``--files`` files (~20 MB in 50 directories):

* ``template``: ``put_layer`` with ``template_layer`` (what ``mapped_layers`` does now: the
  driver copies or snapshots the template, then the tree is re-owned for the new maps);
* ``diff+apply``: the old way, ``diff`` of the top layer into a temporary file and
  ``put_layer`` of it with the new maps.
Each row is the best of ``--runs``; the copies are deleted between runs.
"""

from __future__ import annotations

import argparse
import io
import random
import tarfile
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack

from cs_core.model import IDMap
from cs_core.store import LayerOptions, Store, open_store
from cs_core.testing.loopfs import loop_filesystem

MAPS = [IDMap(0, 100000, 65536)]


def layer_tar(files: int) -> bytes:
    rng = random.Random(3)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for d in range(50):
            info = tarfile.TarInfo(f"d{d:02}")
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 1_700_000_000
            tar.addfile(info)
        for i in range(files):
            data = rng.randbytes(rng.randrange(0, 8192))
            info = tarfile.TarInfo(f"d{i % 50:02}/f{i:05}")
            info.size, info.uid, info.gid, info.mtime = len(data), i % 5, i % 3, 1_700_000_000
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def template_copy(store: Store, top: str, parent: str) -> str:
    return store.put_layer(parent=parent, options=LayerOptions(
        uid_map=MAPS, gid_map=MAPS, template_layer=top)).id


def diff_and_apply(store: Store, top: str, parent: str) -> str:
    with tempfile.TemporaryFile() as spool:
        store.diff(None, top, spool)
        spool.seek(0)
        return store.put_layer(parent=parent, options=LayerOptions(uid_map=MAPS, gid_map=MAPS),
                               diff=spool).id


def best(store: Store, way: Callable[[Store, str, str], str], top: str, parent: str,
         runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        made = way(store, top, parent)
        times.append(time.perf_counter() - start)
        store.delete_layer(made)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    tar = layer_tar(args.files)
    print(f"top layer: {args.files} files, {len(tar) / 1e6:.1f} MB tar; best of {args.runs}")
    print(f"{'setup':<16}{'template':>10}{'diff+apply':>12}{'ratio':>8}")
    for label, fstype, driver in (("vfs on ext4", "ext4", "vfs"), ("vfs on btrfs", "btrfs", "vfs"),
                                  ("btrfs", "btrfs", "btrfs")):
        with ExitStack() as stack:
            root = stack.enter_context(loop_filesystem(fstype, "2G"))
            store = open_store(graph_root=str(root / "g"), run_root=str(root / "r"),
                               driver_name=driver)
            stack.callback(store.shutdown, True)
            base = store.put_layer(diff=io.BytesIO(layer_tar(10)))
            top = store.put_layer(parent=base.id, diff=io.BytesIO(tar))
            new = best(store, template_copy, top.id, base.id, args.runs)
            old = best(store, diff_and_apply, top.id, base.id, args.runs)
            print(f"{label:<16}{new:>9.2f}s{old:>11.2f}s{old / new:>7.1f}x")


if __name__ == "__main__":
    main()
