"""Does a big import block other work? (issue 13 item 4)

Run as root: ``.venv/bin/python bench/contention.py [--drivers vfs,overlay,btrfs] [--runs 5]``.

For each driver and each CLI (ours, then Go's ``/usr/bin/containers-storage``) on twin stores
(vfs and overlay on a fresh journaled ext4 loop file, btrfs on a btrfs one; both unmounted and
detached at the end) it times ``create-layer``, ``mount`` (of a container; the unmount that
follows is not timed), ``set-image-data`` and ``create-container``, first idle, then while
another process imports a ~300 MB layer (``import-layer -f``; each timed command starts at
least 0.3 s into an import, and the imported layer is deleted only between timed commands).
It prints each median, the ratio during/idle and the target: ours at most 2x idle. Go holds
the layer lock for its whole extraction, so its ratios are the import's remaining time.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from applydiff import make_big

from cs_core.testing.loopfs import loop_filesystem

GO = "/usr/bin/containers-storage"
OPS = ["create-layer", "mount", "set-image-data", "create-container"]
TARGET = 2.0
WARMUP = 0.3  # seconds into an import before a timed command may start


def ours() -> list[str]:
    script = Path(sys.executable).with_name("containers-storage")
    return [sys.executable, str(script)] if script.exists() else [sys.executable, "-m", "cs_core"]


def run(argv: list[str]) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {proc.stderr.strip()}")
    return proc.stdout.split("\n")[0].strip()


def run_timed(argv: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds of one command: its own rusage (wait4), so the importer's CPU,
    reaped meanwhile by another thread, is never counted in."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _pid, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        assert proc.stderr is not None
        raise SystemExit(f"{' '.join(argv)} failed: {proc.stderr.read().decode().strip()}")
    return wall, usage.ru_utime + usage.ru_stime


class Twin:
    """One CLI, its own store, and what the timed commands act on."""

    def __init__(self, prefix: list[str], root: Path, driver: str, data: Path) -> None:
        self.prefix = prefix
        self.flags = ["-g", str(root / "graph"), "--run", str(root / "run"), "-s", driver]
        self.data = data
        base = run(self.argv("create-layer"))
        self.image = run(self.argv("create-image", base))
        self.container = run(self.argv("create-container", self.image))

    def argv(self, *args: str) -> list[str]:
        return [*self.prefix, *self.flags, *args]

    def op(self, name: str) -> list[str]:
        """The timed command ``name`` (``after`` does its untimed follow-up)."""
        return {"create-layer": self.argv("create-layer"),
                "mount": self.argv("mount", self.container),
                "set-image-data": self.argv("set-image-data", "-f", str(self.data), self.image,
                                            "blob"),
                "create-container": self.argv("create-container", self.image)}[name]

    def after(self, name: str) -> None:
        if name == "mount":
            run(self.argv("unmount", self.container))


class Importer:
    """Imports the big layer again and again in a thread; timed commands wait for a window."""

    def __init__(self, twin: Twin, tar: Path) -> None:
        self.twin, self.tar = twin, tar
        self.state = threading.Condition()
        self.started = 0.0  # when the current import began; 0 when none runs
        self.busy = 0  # timed commands in flight (deletion waits for them)
        self.stop = False
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self.stop:
            proc = subprocess.Popen(self.twin.argv("import-layer", "-f", str(self.tar)),
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            with self.state:
                self.started = time.monotonic()
                self.state.notify_all()
            out, err = proc.communicate()
            with self.state:
                self.started = 0.0
                while self.busy:
                    self.state.wait()
            if proc.returncode != 0:
                raise SystemExit(f"import-layer failed: {err.strip()}")
            run(self.twin.argv("delete-layer", out.split()[0]))

    @contextlib.contextmanager
    def window(self) -> Iterator[None]:
        """Wait until an import has run for WARMUP seconds; hold off its layer's deletion."""
        with self.state:
            while not self.started or time.monotonic() - self.started < WARMUP:
                self.state.wait(0.05)
            self.busy += 1
        try:
            yield
        finally:
            with self.state:
                self.busy -= 1
                self.state.notify_all()

    def __enter__(self) -> Importer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop = True
        self.thread.join()


Timing = tuple[float, float]  # median wall, median CPU seconds


def median_of(twin: Twin, name: str, runs: int,
              around: Callable[[], contextlib.AbstractContextManager[None]]) -> Timing:
    times = []
    for _ in range(runs):
        with around():
            times.append(run_timed(twin.op(name)))
        twin.after(name)
    return statistics.median(t[0] for t in times), statistics.median(t[1] for t in times)


def measure(twin: Twin, tar: Path, runs: int) -> dict[str, tuple[Timing, Timing]]:
    idle = {name: median_of(twin, name, runs, contextlib.nullcontext) for name in OPS}
    with Importer(twin, tar) as importer:
        busy = {name: median_of(twin, name, runs, importer.window) for name in OPS}
    return {name: (idle[name], busy[name]) for name in OPS}


@contextlib.contextmanager
def filesystem(driver: str) -> Iterator[Path]:
    with loop_filesystem("btrfs" if driver == "btrfs" else "ext4", "6G") as mnt:
        yield mnt


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--drivers", default="vfs,overlay,btrfs")
    parser.add_argument("--runs", type=int, default=5)
    opts = parser.parse_args()
    missed = 0
    print(f"{'driver':<9}{'command':<18}{'cli':<6}{'idle ms (cpu)':>16}{'import ms (cpu)':>18}"
          f"{'ratio':>8}{'cpu':>7}  target")
    for driver in opts.drivers.split(","):
        with filesystem(driver) as mnt:
            tar, data = mnt / "big.tar", mnt / "blob"
            make_big(tar)
            data.write_bytes(os.urandom(64 << 10))
            twins = {"ours": Twin(ours(), mnt / "ours", driver, data),
                     "go": Twin([GO], mnt / "go", driver, data)}
            try:
                results = {who: measure(twin, tar, opts.runs) for who, twin in twins.items()}
            finally:
                for twin in twins.values():
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        subprocess.run(twin.argv("shutdown"), capture_output=True, timeout=60)
        for name in OPS:
            for who in ("ours", "go"):
                idle, busy = results[who][name]
                ratio = busy[0] / idle[0]
                verdict = ""
                if who == "ours":
                    verdict = f"<= {TARGET:.1f}x {'pass' if ratio <= TARGET else 'FAIL'}"
                    missed += ratio > TARGET
                print(f"{driver:<9}{name:<18}{who:<6}{idle[0] * 1000:>9.1f} ({idle[1] * 1000:>4.0f})"
                      f"{busy[0] * 1000:>11.1f} ({busy[1] * 1000:>4.0f}){ratio:>7.2f}x"
                      f"{busy[1] / idle[1]:>6.2f}x  {verdict}", flush=True)
    print(f"\n{missed} target(s) missed" if missed else "\nall targets met")
    return 1 if missed else 0


if __name__ == "__main__":
    os.environ.setdefault("LC_ALL", "C")
    sys.exit(main())
