"""`changes`, `diff` and `diffsize` of a modified layer, ours against the Go CLI, on each driver.

Run as root: ``.venv/bin/python bench/content.py [--drivers vfs,overlay,btrfs] [--runs 5]``.

For each driver, on a fresh loop filesystem (journaled ext4 for vfs and overlay, btrfs for
btrfs), each CLI gets its own store: a base layer of ``--files`` files (``applydiff``), a layer on
top of it, mounted, with ``--modified`` of the files rewritten, then unmounted. Each CLI then runs
``changes``, ``diff -f`` and ``diffsize`` of that top layer on its own store, best of ``--runs``
(whole processes, so interpreter start-up is included). Target (issue 13): ours no slower than
Go, ratio <= 1.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from applydiff import GO, OURS, Timing, best, compile_bytecode, sh
from changes_diff import FILES, MODIFIED, base_tar
from verdict import Check, print_checks

from cs_core.testing.loopfs import loop_filesystem, unmount_under

QUICK = ("--files", "200", "--modified", "40", "--runs", "1")
COMMANDS = ("changes", "diff", "diffsize")
FILESYSTEM = {"vfs": "ext4", "overlay": "ext4", "btrfs": "btrfs"}


class Side:
    """One CLI on its own store holding the modified layer."""

    def __init__(self, exe: list[str], root: Path, driver: str) -> None:
        self.base = [*exe, "-g", str(root / "g"), "-R", str(root / "r"), "-s", driver]
        self.out = root / "diff.tar"
        self.top = ""

    def run(self, *args: str) -> str:
        return sh(*self.base, *args).stdout.decode().strip()

    def build(self, tar: Path, files: int, modified: int) -> None:
        base = self.run("create-layer").split()[-1]
        self.run("applydiff", "-f", str(tar), base)
        self.top = self.run("create-layer", base).split()[-1]
        point = Path(self.run("mount", self.top))
        step = max(1, files // modified)
        for i in range(modified):
            (point / "srv" / f"d{i * step % 50:02}" / f"f{i * step:05}").write_bytes(b"changed\n")
        self.run("unmount", self.top)

    def argv(self, command: str) -> list[str]:
        if command == "layers":  # the reference: start-up and reading the store
            return [*self.base, command]
        tail = ["-f", str(self.out)] if command == "diff" else []
        return [*self.base, command, *tail, self.top]

    def shutdown(self) -> None:
        subprocess.run([*self.base, "shutdown", "-f"], capture_output=True, check=False)


def measure(driver: str, files: int, modified: int, runs: int) -> dict[str, tuple[Timing, Timing]]:
    """(ours, Go) timings of each command on ``driver``."""
    with loop_filesystem(FILESYSTEM[driver], "2G") as mnt:
        tar = mnt / "base.tar"
        tar.write_bytes(base_tar(files))
        sides = {"go": Side([GO], mnt / "go", driver), "ours": Side(OURS, mnt / "ours", driver)}
        try:
            for side in sides.values():
                side.build(tar, files, modified)
            found: dict[str, tuple[Timing, Timing]] = {}
            for command in ("layers", *COMMANDS):
                times = {who: best(runs, lambda: None, lambda s=side, c=command: sh(*s.argv(c)))
                         for who, side in sides.items()}
                found[command] = (times["ours"], times["go"])
            return found
        finally:
            for side in sides.values():
                side.shutdown()
            unmount_under(mnt / "go")
            unmount_under(mnt / "ours")


def checks(drivers: list[str], files: int, modified: int, runs: int) -> list[Check]:
    """Whole processes against the target; the note says what each command costs over the
    same CLI's ``layers`` on the same store (start-up and reading the records), which is what
    this command's own code decides."""
    out = []
    for driver in drivers:
        found = measure(driver, files, modified, runs)
        (us0, _), (go0, _) = found.pop("layers")
        for command, (ours, go) in found.items():
            print(f"{driver} {command}: ours {ours[0]:.3f}s ({ours[1]:.3f} CPU), "
                  f"Go {go[0]:.3f}s ({go[1]:.3f} CPU)", file=sys.stderr)
            out.append(Check(f"{command} ({driver})", ours[0] / go[0], 1.0, "Go CLI",
                             f"{ours[0] * 1000:.0f} vs {go[0] * 1000:.0f} ms; over `layers` "
                             f"{(ours[0] - us0) * 1000:.0f} vs {(go[0] - go0) * 1000:.0f} ms"))
    return out


def main(argv: list[str] | None = None) -> list[Check]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--drivers", default="vfs,overlay,btrfs")
    parser.add_argument("--files", type=int, default=FILES)
    parser.add_argument("--modified", type=int, default=MODIFIED)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    compile_bytecode()
    found = checks(args.drivers.split(","), args.files, args.modified, args.runs)
    print_checks(found)
    return found


if __name__ == "__main__":
    sys.exit(0 if all(c.passed for c in main()) else 1)
