"""How long a vfs child layer takes to create (a full copy of its parent): ours against Go.

Run as root: ``python plugins/vfs/bench/copy_bench.py [files] [fstype]``. The parent layer is
written by the Go CLI from a generated tar (so both sides copy the same tree) on a fresh loop
filesystem; each side then creates children of it, best of three runs, and ``cp -a`` gives the
floor of what a copy costs on that filesystem.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import time

from cs_vfs.driver import VfsDriver

from cs_core.drivers.base import CreateOpts, DriverConfig
from cs_core.testing.gocli import GoCLI
from cs_core.testing.loopfs import loop_filesystem


def make_tree_tar(files: int) -> bytes:
    """A rootfs-like tree: many small files, a few big ones, dirs, symlinks, hard links."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for d in range(files // 50):
            info = tarfile.TarInfo(f"usr/d{d:04d}")
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for i in range(files):
            size = 64 << 20 if i % 5000 == 0 else (i * 37) % 16384
            info = tarfile.TarInfo(f"usr/d{i % (files // 50):04d}/f{i:06d}")
            info.size, info.mode, info.mtime = size, 0o644, 1_700_000_000 + i
            tar.addfile(info, io.BytesIO(os.urandom(min(size, 4096)) * (size // 4096) +
                                          b"x" * (size % 4096) if size > 4096 else b"y" * size))
            if i % 100 == 0:
                link = tarfile.TarInfo(f"usr/d{i % (files // 50):04d}/s{i:06d}")
                link.type, link.linkname = tarfile.SYMTYPE, f"f{i:06d}"
                tar.addfile(link)
    return buf.getvalue()


def best(fn: object, runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    files = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    fstype = sys.argv[2] if len(sys.argv) > 2 else "ext4"
    data = make_tree_tar(files)
    with loop_filesystem(fstype, "8G") as mnt:
        graph, run = mnt / "graph", mnt / "run"
        go = GoCLI(graph, run, "vfs")
        base = go.out("create-layer").strip()
        go.run("applydiff", "--file", "/dev/stdin", base, input=data)
        subprocess.run(["sync"], check=True)
        drv = VfsDriver(DriverConfig(home=graph / "vfs", run_home=run / "vfs", graph_root=graph,
                                     run_root=run))
        counter = iter(range(1000))
        source = drv.layer_dir(base)

        def ours() -> None:
            drv.create(f"ours{next(counter)}", base, CreateOpts())

        def theirs() -> None:
            go.run("create-layer", base)

        def cp() -> None:
            subprocess.run(["cp", "-a", "--reflink=auto", str(source), str(mnt / f"cp{next(counter)}")],
                           check=True)

        results = {"cs_vfs create": best(ours), "Go create-layer": best(theirs), "cp -a": best(cp)}
        print(f"{files} files, {len(data) >> 20} MiB tar, {fstype}")
        for name, seconds in results.items():
            print(f"  {name:16s} {seconds * 1000:8.0f} ms")


if __name__ == "__main__":
    main()
