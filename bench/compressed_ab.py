"""Compressed imports, two source trees A/B interleaved in one run, against their floors.

Run as root: ``.venv/bin/python bench/compressed_ab.py --a /tmp/base --b . [--rounds 5]``.

On one fresh journaled ext4 loop file, builds ``applydiff.py``'s big layer (plain, ``gzip -6``,
``zstd -3``), then for ``--rounds`` rounds, alternating which tree goes first, imports each
input with each tree's CLI (``import-layer -f`` into a fresh vfs store, interpreter start-up
included) and with its engine (``cs_core.archive.ingest.extract_stream`` into a directory, in
a subprocess, timed inside it). Each round also times the floors: ``tar -x`` + ``sync -f`` of
the plain tar, and decompressing alone (isal, ``zstandard``) to nowhere. Prints best and median
wall seconds and CPU seconds (user + system, all threads) per row, the CPU seconds of the
engine's extracting thread alone (``eng-main``: what a second core cannot take over), B/A
ratios, and each
import over max(plain floor, its decompression floor) as issue 13 defines the target.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from applydiff import gzip_floor, make_big, zstd_floor

from cs_core.testing.loopfs import loop_filesystem

_ENGINE = """
import os, sys, time
from cs_core.archive.apply import ApplyOptions, apply_tar
from cs_core.archive.ingest import extract_stream
src, dest = sys.argv[1], sys.argv[2]
c0, t0, m0 = os.times(), time.perf_counter(), time.thread_time()
with open(src, "rb", buffering=0) as fh, open(dest + ".ts.gz", "wb") as ts:
    extract_stream(fh, ts, lambda plain, split: apply_tar(dest, plain, ApplyOptions(), split))
c1 = os.times()
print(time.perf_counter() - t0, c1.user + c1.system - c0.user - c0.system, time.thread_time() - m0)
"""

Sample = tuple[float, float]


def _child_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _timed(cmd: list[str], env: dict[str, str] | None = None) -> Sample:
    subprocess.run(["sync"], check=True)
    c0, t0 = _child_cpu(), time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env=env)
    return time.perf_counter() - t0, _child_cpu() - c0


def _fresh(path: Path) -> Path:
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def _env(tree: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(Path(tree).resolve())}


def _cli(tree: str, src: Path, work: Path) -> Sample:
    root = _fresh(work / "store")
    return _timed([sys.executable, "-P", "-m", "cs_core.cli.main", "-g", str(root / "g"), "-R",
                   str(root / "r"), "-s", "vfs", "import-layer", "-f", str(src)], _env(tree))


def _engine(tree: str, src: Path, work: Path) -> tuple[Sample, Sample]:
    """(wall, CPU of the process) and (CPU of the extracting thread alone, 0): on two idle
    cores that thread's CPU is what the wall time cannot go below."""
    dest = _fresh(work / "eng") / "root"
    dest.mkdir()
    subprocess.run(["sync"], check=True)
    out = subprocess.run([sys.executable, "-P", "-c", _ENGINE, str(src), str(dest)], check=True,
                         capture_output=True, env=_env(tree), text=True).stdout.split()
    return (float(out[0]), float(out[1])), (float(out[2]), 0.0)


def _plain_floor(src: Path, work: Path) -> Sample:
    dest = _fresh(work / "x")
    return _timed(["sh", "-c", f"tar -xf {src} -C {dest} && sync -f {dest}"])


def _round(trees: dict[str, str], inputs: dict[str, Path], work: Path, flip: bool,
           got: dict[str, list[Sample]]) -> None:
    names = list(trees)[::-1] if flip else list(trees)
    got.setdefault("floor tar+sync", []).append(_plain_floor(inputs["plain"], work))
    got.setdefault("floor gzip -d", []).append((gzip_floor(inputs["gzip"]), 0.0))
    got.setdefault("floor zstd -d", []).append((zstd_floor(inputs["zstd"]), 0.0))
    for kind in ("gzip", "zstd", "plain"):
        for name in names:
            got.setdefault(f"{kind} cli {name}", []).append(_cli(trees[name], inputs[kind], work))
            engine, main_thread = _engine(trees[name], inputs[kind], work)
            got.setdefault(f"{kind} engine {name}", []).append(engine)
            got.setdefault(f"{kind} eng-main {name}", []).append(main_thread)
    shutil.rmtree(work / "store", ignore_errors=True)
    shutil.rmtree(work / "eng", ignore_errors=True)
    shutil.rmtree(work / "x", ignore_errors=True)


def _report(got: dict[str, list[Sample]]) -> None:
    best = {k: (min(w for w, _ in v), min(c for _, c in v)) for k, v in got.items()}
    print(f"{'row':<20} {'best wall':>10} {'med wall':>10} {'best cpu':>10}")
    for key, samples in got.items():
        med = statistics.median(w for w, _ in samples)
        print(f"{key:<20} {best[key][0]:10.2f} {med:10.2f} {best[key][1]:10.2f}")
    print("\nCPU seconds of the extracting (main) thread, best: "
          + ", ".join(f"{k} A {best[f'{k} eng-main A'][0]:.2f} B {best[f'{k} eng-main B'][0]:.2f}"
                      for k in ("gzip", "zstd", "plain")))
    print("\nB/A (best wall, best cpu) and import / max(tar+sync, decompression floor), best wall:")
    for kind in ("gzip", "zstd", "plain"):
        dec = best[f"floor {kind} -d"][0] if kind != "plain" else 0.0
        floor = max(best["floor tar+sync"][0], dec)
        for how in ("cli", "engine"):
            a, b = best[f"{kind} {how} A"], best[f"{kind} {how} B"]
            print(f"{kind:<5} {how:<6}  B/A wall {b[0] / a[0]:.2f} cpu {b[1] / a[1]:.2f};  "
                  f"A/floor {a[0] / floor:.2f}  B/floor {b[0] / floor:.2f}  (floor {floor:.2f}s)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--a", required=True, help="source tree A (put first on PYTHONPATH)")
    ap.add_argument("--b", required=True, help="source tree B")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--size", default="4G")
    ap.add_argument("--big-files", type=int, default=20_000)
    ap.add_argument("--big-mb", type=int, default=300)
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root (loop filesystem, stores)")
    trees = {"A": args.a, "B": args.b}
    for tree in trees.values():  # bytecode up to date, so no CLI run times the compiler
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(Path(tree) / "cs_core")], check=True)
    got: dict[str, list[Sample]] = {}
    with loop_filesystem("ext4", args.size) as mnt:
        work = mnt / "work"
        work.mkdir()
        big = work / "big.tar"
        make_big(big, args.big_files, args.big_mb << 20)
        subprocess.run(["gzip", "-k", "-6", str(big)], check=True)
        subprocess.run(["zstd", "-q", "-3", str(big), "-o", str(work / "big.tar.zst")], check=True)
        inputs = {"plain": big, "gzip": work / "big.tar.gz", "zstd": work / "big.tar.zst"}
        for i in range(args.rounds):
            _round(trees, inputs, work, bool(i % 2), got)
            print(f"round {i + 1} done", file=sys.stderr)
    _report(got)


if __name__ == "__main__":
    main()
