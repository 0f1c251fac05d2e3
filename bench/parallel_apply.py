"""Would import-image gain from applying an image's layers in parallel? Measured, not assumed.

Run as root: ``python bench/parallel_apply.py [--layers 3] [--runs 3]``.

Each run applies the same gzip layers (``--mb`` MB over 4,000 files each, half incompressible)
the way ``Store.put_layer`` does (decompress, both digests, tar-split, extract, one ``syncfs``)
into fresh directories on a freshly made journaled ext4 loop filesystem: one after another,
then all at once in threads (what a parallel ``import_image`` in one process could do: overlay's
staged layers are applied without the layer store's lock), then in processes (the upper bound,
paying a process per layer). Prints the best time of each and the ratios.
"""

from __future__ import annotations

import argparse
import gzip
import io
import os
import random
import sys
import tarfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cs_core.archive.apply import ApplyOptions, apply_tar
from cs_core.archive.compression import DigestReader, decompress_stream
from cs_core.archive.tarsplit import TarSplitWriter
from cs_core.atomic import syncfs
from cs_core.testing.loopfs import loop_filesystem


def make_layer(path: Path, seed: int, mb: int, files: int = 4000) -> None:
    rng = random.Random(seed)
    noise = rng.randbytes(4 << 20)
    text = b"layer image storage tar container digest " * (1 << 16)
    each = (mb << 20) // files
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for i in range(files):
            src = noise if i % 2 else text
            start = rng.randrange(0, len(src) - each)
            info = tarfile.TarInfo(f"usr/d{i % 50:02}/f{i}")
            info.size, info.mtime = each, 1_700_000_000
            tar.addfile(info, io.BytesIO(src[start:start + each]))
    path.write_bytes(gzip.compress(buf.getvalue(), compresslevel=6, mtime=0))


def apply_one(blob: str, dest: str) -> float:
    """What put_layer does with a blob, without the records; returns the seconds it took."""
    start = time.perf_counter()
    os.makedirs(dest)
    with open(blob, "rb") as f, open(dest + ".tar-split.gz", "wb") as ts, \
            gzip.GzipFile(fileobj=ts, mode="wb", compresslevel=1, mtime=0) as gz:
        raw = DigestReader(f)
        _, plain_stream = decompress_stream(raw)  # type: ignore[arg-type]
        plain = DigestReader(plain_stream)
        apply_tar(dest, plain, ApplyOptions(), tar_split=TarSplitWriter(gz))  # type: ignore[arg-type, arg-type]
        _ = raw.digest, plain.digest
    syncfs(dest)
    return time.perf_counter() - start


def sequential(blobs: list[str], dests: list[str]) -> None:
    for blob, dest in zip(blobs, dests, strict=True):
        apply_one(blob, dest)


def threaded(blobs: list[str], dests: list[str]) -> None:
    with ThreadPoolExecutor(len(blobs)) as pool:
        list(pool.map(apply_one, blobs, dests))


def processes(blobs: list[str], dests: list[str]) -> None:
    with ProcessPoolExecutor(len(blobs)) as pool:
        list(pool.map(apply_one, blobs, dests))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--mb", type=int, default=60)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    ways: dict[str, Callable[[list[str], list[str]], None]] = {
        "sequential": sequential, "threads": threaded, "processes": processes}
    best = dict.fromkeys(ways, float("inf"))
    size = f"{max(2, args.layers * args.mb * 3 // 1024 + 1)}G"
    with loop_filesystem("ext4", size) as mnt:
        blobs = []
        for i in range(args.layers):
            blob = mnt / f"layer{i}.tar.gz"
            make_layer(blob, i, args.mb)
            blobs.append(str(blob))
        print(f"{args.layers} layers of {args.mb} MB "
              f"({sum(os.path.getsize(b) for b in blobs) >> 20} MB gzip), "
              f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
        for run in range(args.runs):
            for name, way in ways.items():  # interleaved, so load changes hit all three
                dests = [str(mnt / f"{name}-{run}-{i}") for i in range(args.layers)]
                start = time.perf_counter()
                way(blobs, dests)
                best[name] = min(best[name], time.perf_counter() - start)
    for name, seconds in best.items():
        print(f"{name:11} {seconds:6.2f} s  ({best['sequential'] / seconds:.2f}x sequential)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
