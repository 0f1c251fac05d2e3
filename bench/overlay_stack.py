"""Mount time of the overlay driver as the layer stack grows (the goal: flat per layer).

Builds one chain of layers (one small file each, plus a deletion every 50 layers so that
nested stacks need their whiteout summaries) on a fresh journaled ext4 loop filesystem, then
mounts the top layer read-write and read-only at several depths and prints the median time
per mount and per layer.

    python bench/overlay_stack.py [--depths 10,100,500,1000,2000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import stat
import statistics
import time

from cs_overlay import mounting
from cs_overlay.driver import OverlayDriver

from cs_core.drivers.base import CreateOpts, DriverConfig, MountOpts
from cs_core.testing.loopfs import loop_filesystem


def build(driver: OverlayDriver, depth: int) -> list[str]:
    ids: list[str] = []
    parent = None
    for i in range(depth):
        lid = f"{i + 1:064x}"
        driver.create(lid, parent, CreateOpts())
        diff = driver.home / lid / "diff"
        (diff / f"f{i}").write_text(str(i))
        if i % 50 == 49:
            os.mknod(diff / f"f{i - 25}", stat.S_IFCHR, 0)
        ids.append(lid)
        parent = lid
    return ids


def time_mounts(driver: OverlayDriver, top: str, opts: MountOpts, repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        merged = driver.get(top, opts)
        samples.append(time.perf_counter() - start)
        try:
            assert os.listdir(merged)
        finally:
            driver.put(top)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depths", default="10,100,500,1000,2000")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    depths = sorted(int(x) for x in args.depths.split(","))
    with loop_filesystem("ext4", "4G") as mnt:
        graph, run = mnt / "graph", mnt / "run"
        driver = OverlayDriver(DriverConfig(home=graph / "overlay", run_home=run / "overlay",
                                            graph_root=graph, run_root=run))
        try:
            start = time.perf_counter()
            ids = build(driver, max(depths))
            print(f"created {len(ids)} layers in {time.perf_counter() - start:.2f}s "
                  f"(new mount API: {mounting.new_api_usable()})")
            print(f"{'depth':>6} {'rw mount ms':>12} {'us/layer':>9} {'ro mount ms':>12} {'us/layer':>9}")
            for depth in depths:
                top = ids[depth - 1]
                rw = time_mounts(driver, top, MountOpts(), args.repeat)
                ro = time_mounts(driver, top, MountOpts(options=("ro",)), args.repeat)
                print(f"{depth:>6} {rw * 1e3:>12.2f} {rw * 1e6 / depth:>9.1f} "
                      f"{ro * 1e3:>12.2f} {ro * 1e6 / depth:>9.1f}")
        finally:
            driver.cleanup()
            for p in sorted((p for p in mounting.mountinfo_targets() if p.startswith(str(mnt) + "/")),
                            key=len, reverse=True):
                mounting.unmount(p)


if __name__ == "__main__":
    main()
