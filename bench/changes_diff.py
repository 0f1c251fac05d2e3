"""`changes`, `diff` and `applydiff` of one container: two cs_core checkouts side by side in one run.

Run as root: ``python bench/changes_diff.py --a /work/main --b /work/wt-NAME [--runs 5]``.

On one freshly made journaled ext4 loop file, each checkout gets its own vfs store with the same
content: a base layer of 5,000 files (imported with ``applydiff``, timed) and a container whose
live layer has 1,000 of them modified (vfs copies the whole tree, so ``changes`` compares 5,000
files and ``diff`` exports the 1,000). Runs of the two checkouts alternate, best of ``--runs``;
prints wall seconds and the ratio b/a.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import subprocess
import sys
import tarfile
import time
from pathlib import Path

from cs_core.testing.loopfs import loop_filesystem

FILES, MODIFIED = 5_000, 1_000


def base_tar(files: int = FILES) -> bytes:
    """A layer of ``files`` 2 KB files in 50 directories."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for d in range(50):
            info = tarfile.TarInfo(f"srv/d{d:02}")
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 1_700_000_000
            tf.addfile(info)
        for i in range(files):
            data = (b"%05d " % i) * 400
            info = tarfile.TarInfo(f"srv/d{i % 50:02}/f{i:05}")
            info.size, info.mode, info.mtime = len(data), 0o644, 1_700_000_000
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class Checkout:
    def __init__(self, src: str, root: Path) -> None:
        self.env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [src, *(f"{src}/plugins/{p}" for p in ("vfs", "overlay", "btrfs"))])}
        self.base = [sys.executable, "-m", "cs_core", "-g", str(root / "g"), "-R", str(root / "r"),
                     "-s", "vfs"]

    def run(self, *args: str, stdin: bytes | None = None) -> bytes:
        proc = subprocess.run([*self.base, *args], input=stdin, capture_output=True, env=self.env)
        if proc.returncode:
            raise SystemExit(f"{args[0]}: {proc.stderr.decode()}{proc.stdout.decode()}")
        return proc.stdout

    def timed(self, *args: str, stdin: bytes | None = None) -> tuple[float, float]:
        """Wall and CPU seconds (user + system of the child): CPU is steadier on a busy box."""
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        self.run(*args, stdin=stdin)
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        return wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def applydiff(co: Checkout, tar: bytes, i: int) -> tuple[float, float]:
    co.run("create-layer", "-i", f"{i + 1:064x}")
    return co.timed("applydiff", f"{i + 1:064x}", stdin=tar)


def container(co: Checkout) -> str:
    """A container of the first layer with files modified; returns its layer's ID."""
    co.run("create-image", "-i", "a" * 64, f"{1:064x}")
    co.run("create-container", "-i", "c" * 64, "a" * 64)
    point = Path(co.run("mount", "c" * 64).decode().strip())
    for i in range(MODIFIED):
        (point / "srv" / f"d{i % 50:02}" / f"f{i * (FILES // MODIFIED):05}").write_bytes(b"changed\n")
    return str(json.loads(co.run("container", "--json", "c" * 64))[0]["layer"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--a", required=True, help="baseline checkout (e.g. /work/main)")
    parser.add_argument("--b", required=True, help="checkout under test")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    tar = base_tar()
    with loop_filesystem("ext4", "4G") as mnt:
        cos = {"a": Checkout(args.a, mnt / "a"), "b": Checkout(args.b, mnt / "b")}
        results: dict[str, dict[str, tuple[float, float]]] = {k: {} for k in cos}
        try:
            for key in cos:
                results[key]["applydiff"] = (float("inf"), float("inf"))
            for i in range(args.runs):  # alternating, so both see the same file system state
                os.sync()
                for key, co in cos.items():
                    results[key]["applydiff"] = _best(results[key]["applydiff"], applydiff(co, tar, i))
            layers = {key: container(co) for key, co in cos.items()}
            for what in ("changes", "diff"):
                for key in cos:
                    results[key][what] = (float("inf"), float("inf"))
                for _ in range(args.runs):
                    for key, co in cos.items():
                        results[key][what] = _best(results[key][what], co.timed(what, layers[key]))
        finally:
            for co in cos.values():
                subprocess.run([*co.base, "shutdown", "-f"], capture_output=True, env=co.env)
    print("best of", args.runs, "wall (cpu) seconds")
    for what in ("applydiff", "changes", "diff"):
        (aw, ac), (bw, bc) = results["a"][what], results["b"][what]
        print(f"{what:10} a {aw:6.3f} ({ac:6.3f})  b {bw:6.3f} ({bc:6.3f})  "
              f"b/a {bw / aw:5.3f} ({bc / ac:5.3f})")


def _best(a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float]:
    return min(a[0], b[0]), min(a[1], b[1])


if __name__ == "__main__":
    main()
