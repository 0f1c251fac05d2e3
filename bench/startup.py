"""CLI start-up benchmark: what one ``containers-storage`` process costs, ours against Go's.

Run: ``/work/venv/bin/python bench/startup.py [--runs 10] [--driver vfs]``.

Each command runs ``--runs`` times against twin stores (one per CLI, empty at the start) and the
best wall time is printed with the ratio to the Go CLI. ``create-layer`` adds a layer per run, so
it runs last; ``layers`` is measured while the stores are still empty. Compile our bytecode first
(``python -m compileall -q cs_core plugins/*/cs_*``) when PYTHONDONTWRITEBYTECODE is set, or the
numbers time the compiler.
"""

from __future__ import annotations

import argparse
import os
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GO = "/usr/bin/containers-storage"
COMMANDS: list[tuple[str, list[str]]] = [
    ("version", ["version"]),
    ("--help", ["--help"]),
    ("layers", ["layers"]),
    ("create-layer", ["create-layer"]),
]


def ours() -> list[str]:
    """The installed console script beside this interpreter (what users run), else ``-m``."""
    script = Path(sys.executable).with_name("containers-storage")
    if script.exists():
        return [sys.executable, str(script)]
    return [sys.executable, "-m", "cs_core.cli.main"]


def best_time(argv: list[str], runs: int) -> tuple[float, float]:
    """Best wall and best CPU (user + system) seconds: on a shared machine the wall clock
    swings with the load, the CPU time much less."""
    best_wall = best_cpu = float("inf")
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        best_wall = min(best_wall, time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
        best_cpu = min(best_cpu, cpu)
    return best_wall, best_cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--driver", default="vfs")
    parser.add_argument("--ours", help="command line of our CLI (default: the console script "
                        "beside this interpreter), e.g. to time another checkout")
    opts = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="cs-startup-"))
    clis = {"ours": shlex.split(opts.ours) if opts.ours else ours(), "go": [GO]}
    try:
        print(f"{'command':<14}{'ours ms':>10}{'go ms':>10}{'ratio':>8}"
              f"{'ours cpu':>10}{'go cpu':>10}{'ratio':>8}")
        for label, cmd in COMMANDS:
            times = {}
            for who, prefix in clis.items():
                root = base / who
                flags = ["-g", str(root / "graph"), "--run", str(root / "run"), "-s", opts.driver]
                times[who] = best_time([*prefix, *flags, *cmd], opts.runs)
            row = f"{label:<14}"
            for i in (0, 1):
                ours_t, go_t = times["ours"][i], times["go"][i]
                ratio = ours_t / go_t if go_t else float("inf")
                row += f"{ours_t * 1000:>10.1f}{go_t * 1000:>10.1f}{ratio:>7.1f}x"
            print(row)
    finally:
        for who in clis:
            root = base / who
            if (root / "graph").exists():  # vfs needs no unmounting, but shutdown is cheap
                subprocess.run([*clis[who], "-g", str(root / "graph"), "--run", str(root / "run"),
                                "-s", opts.driver, "shutdown"], capture_output=True, check=False)
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("LC_ALL", "C")
    sys.exit(main())
