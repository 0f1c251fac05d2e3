"""btrfs benchmark: layer chains, import-layer and deletes, cs_core against the Go CLI, on one
fresh loopback btrfs.

Run as root: ``/work/venv/bin/python bench/btrfs.py [--layers 50] [--runs 3]``.

Rows:
* ``create chain (CLI)``: ``create-layer`` N times, each on the previous layer, one process per
  layer (what a script driving either CLI pays, Python start-up included);
* ``create chain (library)``: the same through ``Store.create_layer`` in one process (Go has no
  equivalent here; printed next to the per-layer time of Go's CLI for scale);
* ``import-layer``: a ~60 MB layer of 6,000 files, plain tar;
* ``delete chain (CLI)``: ``delete-layer`` of the chain, top first;
* ``changes``: a container layer that edits 20 files over the 6,000-file layer, through the
  driver's generation-number path and through the full tree comparison (Go's only way).
Timings are the best of ``--runs``, each on a fresh store.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from pathlib import Path

GO = "/usr/bin/containers-storage"
OURS = [sys.executable, "-m", "cs_core.cli.main"]


def make_layer(path: Path, files: int = 6000, total: int = 60 << 20) -> None:
    rng = random.Random(7)
    noise = rng.randbytes(4 << 20)
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tf:
        for d in range(60):
            info = tarfile.TarInfo(f"opt/d{d:02}")
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 1_700_000_000
            tf.addfile(info)
        for i in range(files):
            size = rng.randint(1, 2 * total // files)
            off = rng.randrange(0, len(noise) - size)
            info = tarfile.TarInfo(f"opt/d{i % 60:02}/f{i:05}")
            info.size, info.mode, info.mtime = size, 0o644, 1_700_000_000
            tf.addfile(info, io.BytesIO(noise[off:off + size]))


# Cached bytecode as an installed CLI has it (some shells here export PYTHONDONTWRITEBYTECODE,
# which would charge every run of our CLI with compiling all of cs_core).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def sh(*cmd: str) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, env=ENV).stdout.decode()


class Side:
    def __init__(self, cmd: list[str], root: Path) -> None:
        self.cmd, self.root = cmd, root
        self.n = 0

    def fresh(self) -> list[str]:
        """A new store; returns the argument prefix for it."""
        self.n += 1
        g, r = self.root / f"g{self.n}", self.root / f"r{self.n}"
        return [*self.cmd, "-g", str(g), "-R", str(r), "-s", "btrfs"]

    def close(self) -> None:
        for i in range(1, self.n + 1):
            subprocess.run([*self.cmd, "-g", str(self.root / f"g{i}"), "-R", str(self.root / f"r{i}"),
                            "-s", "btrfs", "shutdown", "-f"], capture_output=True, check=False)
        subprocess.run(["umount", "-R", "-l", str(self.root)], capture_output=True, check=False)


def best(runs: int, run: Callable[[], float]) -> float:
    return min(run() for _ in range(runs))


def chain(base: list[str], layers: int) -> tuple[float, float, list[str]]:
    ids: list[str] = []
    t0 = time.perf_counter()
    for _ in range(layers):
        ids.append(sh(*base, "create-layer", *ids[-1:]).split()[0])
    t_create = time.perf_counter() - t0
    t0 = time.perf_counter()
    for lid in reversed(ids):
        sh(*base, "delete-layer", lid)
    return t_create, time.perf_counter() - t0, ids


def library_chain(root: Path, layers: int) -> float:
    from cs_core.store import open_store

    s = open_store(graph_root=str(root / "g"), run_root=str(root / "r"), driver_name="btrfs")
    try:
        parent = None
        t0 = time.perf_counter()
        for _ in range(layers):
            parent = s.create_layer(parent=parent).id
        return time.perf_counter() - t0
    finally:
        s.shutdown(force=True)


def changes_timing(root: Path, tar: Path, runs: int) -> tuple[float, float, int, dict[str, float]]:
    from cs_core.drivers import naive
    from cs_core.store import ContainerOptions, open_store

    s = open_store(graph_root=str(root / "g"), run_root=str(root / "r"), driver_name="btrfs")
    try:
        with open(tar, "rb") as fh:
            base = s.put_layer(diff=fh)
        image = s.create_image(layer=base.id)
        ctr = s.create_container(image=image.id, options=ContainerOptions())
        mnt = Path(s.mount(ctr.id))
        for i, p in enumerate(sorted((mnt / "opt").rglob("f*"))[::300]):
            p.write_bytes(b"edited %d" % i)
        s.unmount(ctr.id)
        drv, layer = s.driver, ctr.layer
        n = len(drv.changes(layer, base.id))
        same = [c.path for c in naive.changes(drv, layer, base.id)]
        assert [c.path for c in drv.changes(layer, base.id)] == same
        fast = best(runs, lambda: _timed(lambda: drv.changes(layer, base.id)))
        slow = best(runs, lambda: _timed(lambda: naive.changes(drv, layer, base.id)))
    finally:
        s.shutdown(force=True)
    # End to end through both CLIs on this store: `changes` and `diff` of the container layer.
    cli: dict[str, float] = {}
    for name, cmd in (("go", [GO]), ("us", OURS)):
        base_cmd = [*cmd, "-g", str(root / "g"), "-R", str(root / "r"), "-s", "btrfs"]
        for what in ("changes", "diff"):
            argv = [*base_cmd, what, *(["-f", "/dev/null"] if what == "diff" else []), layer]

            def run_cli(argv: list[str] = argv) -> float:
                return _timed(lambda: sh(*argv))

            cli[f"{name} {what}"] = best(runs, run_cli)
        subprocess.run([*base_cmd, "shutdown", "-f"], capture_output=True, check=False)
    return fast, slow, n, cli


def _timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--layers", type=int, default=50)
    ap.add_argument("--size", default="4G")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root (loop filesystem, stores)")
    from cs_core.testing.loopfs import loop_filesystem

    with loop_filesystem("btrfs", args.size) as mnt:
        tar = mnt / "layer.tar"
        make_layer(tar)
        go, us = Side([GO], mnt / "go"), Side(OURS, mnt / "us")
        results: dict[str, dict[str, float]] = {"go": {}, "us": {}}
        try:
            for name, side in (("go", go), ("us", us)):
                creates, deletes = [], []
                for _ in range(args.runs):
                    c, d, _ids = chain(side.fresh(), args.layers)
                    creates.append(c)
                    deletes.append(d)
                results[name]["create chain (CLI)"] = min(creates)
                results[name]["delete chain (CLI)"] = min(deletes)

                def imp(side: Side = side) -> float:
                    base = side.fresh()
                    subprocess.run(["sync"], check=True)
                    t0 = time.perf_counter()
                    sh(*base, "import-layer", "-f", str(tar))
                    return time.perf_counter() - t0

                results[name]["import-layer 60MB"] = best(args.runs, imp)
            lib = best(args.runs, lambda: library_chain(mnt / "lib" / str(time.monotonic_ns()), args.layers))
            fast, slow, n_changes, cli = changes_timing(mnt / "lib" / "changes", tar, args.runs)
            for what in ("changes", "diff"):
                results["go"][f"{what} of container (CLI)"] = cli[f"go {what}"]
                results["us"][f"{what} of container (CLI)"] = cli[f"us {what}"]
        finally:
            go.close()
            us.close()
            subprocess.run(["umount", "-R", "-l", str(mnt / "lib")], capture_output=True, check=False)

    n = args.layers
    print(f"\n{'workload':<28} {'Go CLI':>9} {'ours':>9} {'ours/Go':>8}")
    for key in results["go"]:
        g, u = results["go"][key], results["us"][key]
        print(f"{key:<28} {g:8.2f}s {u:8.2f}s {u / g:8.2f}")
    g, u = results["go"]["create chain (CLI)"], results["us"]["create chain (CLI)"]
    print(f"\nper layer: Go CLI {g / n * 1000:.1f} ms/process, ours {u / n * 1000:.1f} ms/process, "
          f"ours in one process (Store.create_layer) {lib / n * 1000:.2f} ms")
    print(f"changes of a container layer ({n_changes} entries over 6,000 files): generation numbers "
          f"{fast * 1000:.1f} ms, full tree comparison {slow * 1000:.1f} ms ({slow / fast:.1f}x)")


if __name__ == "__main__":
    main()
