"""CLI start-up benchmark: what one ``containers-storage`` process costs, against issue 13's targets.

Run as root: ``.venv/bin/python bench/startup.py [--runs 10] [--driver vfs] [--ours "CMD ..."]``.

Everything runs in one go on a fresh journaled ext4 loop file (unmounted and detached at the
end), ours beside the Go CLI (``/usr/bin/containers-storage``) on twin stores, and every line
prints a ratio, its target and pass/fail:

* ``python -c pass`` by the same interpreter is the unit for the start-up targets: commands that
  touch little (``version``, ``layers``, ``exists``, ``get-names``, ``metadata`` on a small store)
  at most 2.5x it, ``create-layer``/``create-image``/``create-container`` at most 3x;
* ``mount`` + ``unmount`` of a container at most twice Go's pair plus two interpreter start-ups;
* the zipapp from ``make binary`` no slower than the installed script (``layers``);
* 4 processes x 25 small layers (create-layer + applydiff each) reach at least half of Go's
  layers per second.

Times are the best of ``--runs`` (wall; CPU in brackets): on a shared machine the best run is
the one least disturbed by other work. Compile our bytecode first
(``python -m compileall -q cs_core plugins/*/cs_*``) when PYTHONDONTWRITEBYTECODE is set, or the
numbers time the compiler.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import resource
import shlex
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

GO = "/usr/bin/containers-storage"
REPO = Path(__file__).resolve().parent.parent
LIGHT = ["version", "layers", "exists", "get-names", "metadata"]
CREATE = ["create-layer", "create-image", "create-container"]


def ours() -> list[str]:
    """The installed console script beside this interpreter (what users run), else ``-m``."""
    script = Path(sys.executable).with_name("containers-storage")
    if script.exists():
        return [sys.executable, str(script)]
    return [sys.executable, "-m", "cs_core.cli.main"]


def timed(action: Callable[[], object]) -> tuple[float, float]:
    """Wall and CPU (user + system of children) seconds of one call."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    action()
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def best(action: Callable[[], object], runs: int) -> tuple[float, float]:
    results = [timed(action) for _ in range(runs)]
    return min(r[0] for r in results), min(r[1] for r in results)


def best_ab(a: Callable[[], object], b: Callable[[], object] | None,
            runs: int) -> tuple[tuple[float, float], tuple[float, float] | None]:
    """``best`` of two actions whose runs alternate, so both see the same machine load."""
    if b is None:
        return best(a, runs), None
    results = [(timed(a), timed(b)) for _ in range(runs)]
    return ((min(r[0][0] for r in results), min(r[0][1] for r in results)),
            (min(r[1][0] for r in results), min(r[1][1] for r in results)))


def quiet(argv: list[str]) -> None:
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)


def output(argv: list[str]) -> str:
    """The first line of a command's output: the ID a create command prints."""
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout.split("\n")[0]


@contextlib.contextmanager
def ext4_loop(size: str = "2G") -> Iterator[Path]:
    """A fresh journaled ext4 filesystem on a loop file (the root fs here has no journal)."""
    work = Path(tempfile.mkdtemp(prefix="cs-startup-"))
    image, mnt = work / "fs.img", work / "mnt"
    mnt.mkdir()
    subprocess.run(["truncate", "-s", size, str(image)], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-O", "has_journal", str(image)], check=True)
    subprocess.run(["mount", "-o", "loop", str(image), str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=False)
        image.unlink(missing_ok=True)
        mnt.rmdir()
        work.rmdir()


class Twin:
    """One CLI and its own store."""

    def __init__(self, prefix: list[str], root: Path, driver: str) -> None:
        self.prefix = prefix
        self.flags = ["-g", str(root / "graph"), "--run", str(root / "run"), "-s", driver]

    def argv(self, *args: str) -> list[str]:
        return [*self.prefix, *self.flags, *args]

    def populate(self) -> dict[str, str]:
        """A small store: two layers, an image, a container; the IDs the commands take."""
        base = output(self.argv("create-layer", "-n", "base"))
        output(self.argv("create-layer", base))
        image = output(self.argv("create-image", "-n", "img", base))
        container = output(self.argv("create-container", "-n", "ctr", image))
        return {"layer": base, "image": image, "container": container}

    def light(self, command: str, ids: dict[str, str]) -> list[str]:
        tail = [] if command in ("version", "layers") else [ids["layer"]]
        return self.argv(command, *tail)

    def create(self, command: str, ids: dict[str, str]) -> list[str]:
        tail = {"create-layer": [], "create-image": [ids["layer"]],
                "create-container": [ids["image"]]}[command]
        return self.argv(command, *tail)

    def runner(self, kind: str, command: str, ids: dict[str, str]) -> Callable[[], None]:
        """One timed run of ``command`` (``kind`` light, create or mount) on this store."""
        if kind == "mount":
            return lambda: self.mount_pair(ids["container"])
        argv = self.light(command, ids) if kind == "light" else self.create(command, ids)
        return lambda: quiet(argv)

    def mount_pair(self, container: str) -> None:
        quiet(self.argv("mount", container))
        quiet(self.argv("unmount", container))

    def small_layers(self, tar: Path, processes: int = 4,
                     per_process: int = 25) -> tuple[float, float]:
        """Wall and CPU seconds for ``processes`` writers each adding ``per_process`` layers
        with content. CPU over wall is the cores the writers kept busy: near the machine's
        cores, the rate is bounded by CPU per layer; well below them, by what serialises
        the writers (the locks and what is done under them)."""

        def writer() -> None:
            for _ in range(per_process):
                layer = output(self.argv("create-layer"))
                quiet(self.argv("applydiff", "-f", str(tar), layer))

        def run_all() -> None:
            threads = [threading.Thread(target=writer) for _ in range(processes)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()

        return timed(run_all)


def small_tar(path: Path) -> None:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for name in ("etc/hostname", "usr/bin/tool"):
            data = f"contents of {name}\n".encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 1_700_000_000
            tar.addfile(info, io.BytesIO(data))


class Report:
    def __init__(self) -> None:
        self.failed = 0

    def line(self, label: str, ours_t: tuple[float, float], ref: tuple[float, float], ref_name: str,
             target: float) -> None:
        ratio = ours_t[0] / ref[0]
        ok = ratio <= target
        self.failed += not ok
        print(f"{label:<26}{ours_t[0] * 1000:>8.1f} ({ours_t[1] * 1000:>5.1f}){ref[0] * 1000:>9.1f}"
              f" ({ref[1] * 1000:>5.1f}) {ref_name:<14}{ratio:>6.2f}x  <= {target:<5.2f}"
              f"{'pass' if ok else 'FAIL':>6}")

    @staticmethod
    def baseline(ours_t: tuple[float, float], base: tuple[float, float] | None,
                 ref: tuple[float, float], scale: float = 1.0) -> None:
        """The ``--baseline`` CLI's time (its runs alternated with ours), its ratio to the same
        reference, and ours over it in wall and CPU time."""
        if base is None:
            return
        print(f"{'':<26}{'':>15}{base[0] * 1000 * scale:>9.1f} ({base[1] * 1000 * scale:>5.1f})"
              f" baseline {base[0] / ref[0]:>9.2f}x; ours/baseline {ours_t[0] / base[0]:.2f}"
              f" (CPU {ours_t[1] / base[1]:.2f})")


def build_zipapp(dest: Path) -> list[str]:
    subprocess.run([sys.executable, str(REPO / "scripts" / "build_binary.py"), str(dest)],
                   check=True, stdout=subprocess.DEVNULL)
    # The same interpreter, without site: the venv's editable installs would otherwise serve
    # cs_core from the checkout instead of the zip (and a pyenv shim on the #! line adds ~100 ms).
    return [sys.executable, "-S", str(dest)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--driver", default="vfs")
    parser.add_argument("--ours", help="command line of our CLI (default: the console script "
                        "beside this interpreter), e.g. to time another checkout")
    parser.add_argument("--baseline", help="command line of a second build of our CLI (e.g. "
                        "the code before a change), timed on its own store with its runs "
                        "alternating with ours'; each line then also gives ours/baseline")
    parser.add_argument("--skip-concurrent", action="store_true")
    opts = parser.parse_args()
    prefix = shlex.split(opts.ours) if opts.ours else ours()
    report = Report()
    with ext4_loop() as mnt:
        twins = {"ours": Twin(prefix, mnt / "ours", opts.driver), "go": Twin([GO], mnt / "go", opts.driver)}
        if opts.baseline:
            twins["base"] = Twin(shlex.split(opts.baseline), mnt / "base", opts.driver)
        ids = {who: twin.populate() for who, twin in twins.items()}
        us, go, base = twins["ours"], twins["go"], twins.get("base")
        try:
            python = best(lambda: quiet([sys.executable, "-c", "pass"]), opts.runs * 2)
            print(f"python -c pass: {python[0] * 1000:.1f} ms ({python[1] * 1000:.1f} CPU)\n")
            print(f"{'workload':<26}{'ours ms (cpu)':>15}{'ref ms (cpu)':>16} {'ref':<14}"
                  f"{'ratio':>7}  target")
            for cmd in LIGHT:
                t, b = best_ab(us.runner("light", cmd, ids["ours"]),
                               base.runner("light", cmd, ids["base"]) if base else None, opts.runs)
                g = best(lambda c=cmd: quiet(go.light(c, ids["go"])), opts.runs)
                report.line(cmd, t, python, "python -c pass", 2.5)
                print(f"{'':<26}{'':>15}{g[0] * 1000:>9.1f} ({g[1] * 1000:>5.1f}) Go CLI"
                      f"{t[0] / g[0]:>14.1f}x")
                report.baseline(t, b, python)
            for cmd in CREATE:
                t, b = best_ab(us.runner("create", cmd, ids["ours"]),
                               base.runner("create", cmd, ids["base"]) if base else None, opts.runs)
                g = best(lambda c=cmd: quiet(go.create(c, ids["go"])), opts.runs)
                report.line(cmd, t, python, "python -c pass", 3.0)
                print(f"{'':<26}{'':>15}{g[0] * 1000:>9.1f} ({g[1] * 1000:>5.1f}) Go CLI"
                      f"{t[0] / g[0]:>14.1f}x")
                report.baseline(t, b, python)
            t, b = best_ab(us.runner("mount", "", ids["ours"]),
                           base.runner("mount", "", ids["base"]) if base else None, opts.runs)
            g = best(lambda: go.mount_pair(ids["go"]["container"]), opts.runs)
            # Issue 13: "at most 2x Go's pair plus two interpreter start-ups" (the label says
            # so too; this line computed 1x Go's pair until 2026-12-08).
            allowance = (2 * g[0] + 2 * python[0], 2 * g[1] + 2 * python[1])
            report.line("mount+unmount", t, allowance, "2xGo+2xpython", 1.0)
            print(f"{'':<26}{'':>15}{g[0] * 1000:>9.1f} ({g[1] * 1000:>5.1f}) Go CLI pair"
                  f"{t[0] / g[0]:>9.1f}x")
            report.baseline(t, b, allowance)
            if not opts.ours:
                with tempfile.TemporaryDirectory() as tmp:
                    zipapp = Twin(build_zipapp(Path(tmp) / "containers-storage"), mnt / "ours",
                                  opts.driver)
                    z = best(lambda: quiet(zipapp.argv("layers")), opts.runs)
                    t = best(lambda: quiet(us.argv("layers")), opts.runs)
                    report.line("zipapp layers", z, t, "script", 1.0)
            if not opts.skip_concurrent:
                tar = mnt / "small.tar"
                small_tar(tar)
                ours_t = us.small_layers(tar)
                go_t = go.small_layers(tar)
                base_t = base.small_layers(tar) if base else None
                print(f"\n4 x 25 small layers: ours {100 / ours_t[0]:.1f} layers/s "
                      f"({ours_t[1] * 10:.0f} ms CPU/layer, {ours_t[1] / ours_t[0]:.2f} of "
                      f"{os.cpu_count()} cores busy), Go {100 / go_t[0]:.1f} layers/s "
                      f"({go_t[1] * 10:.0f} ms CPU/layer, {go_t[1] / go_t[0]:.2f} cores busy)")
                if base_t:
                    print(f"{'':<21}baseline {100 / base_t[0]:.1f} layers/s "
                          f"({base_t[1] * 10:.0f} ms CPU/layer, {base_t[1] / base_t[0]:.2f} cores "
                          "busy), run after ours")
                report.line("4x25 small layers (s)", ours_t, go_t, "Go CLI", 2.0)
                report.baseline(ours_t, base_t, go_t)
        finally:
            for twin in twins.values():
                quiet(twin.argv("shutdown"))
    print(f"\n{report.failed} target(s) missed" if report.failed else "\nall targets met")
    return 1 if report.failed else 0


if __name__ == "__main__":
    os.environ.setdefault("LC_ALL", "C")
    sys.exit(main())
