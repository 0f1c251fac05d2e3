"""Parity with the Go CLI: the script of ``parity.py`` on twin stores, outputs compared.

The script runs on each driver (btrfs on a loopback btrfs of its own). Every difference that
remains is listed below with the exact step (its text and which run of that text, since
steps such as ``layers`` recur), what differs, the drivers it shows on, and the reason;
anything else fails, and so does an exemption that no longer matches a difference.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cs_core.testing.loopfs import driver_home

from . import parity
from .conftest import unmount_under

DRIVERS = ("vfs", "overlay", "btrfs")
ALL = frozenset(DRIVERS)
# (step, which run of that step's text, what differs: "exit code", "out" or "err")
Key = tuple[str, int, str]
EVERYTHING = ("exit code", "out", "err")


def _on(drivers: frozenset[str], step: str, *what: str, nth: int = 1) -> dict[Key, frozenset[str]]:
    return {(step, nth, w): drivers for w in what}


# Deliberate: we follow the newer Go CLI, or decline a defect of 1.43 (facts §8.3/§12).
NEWER_GO = {
    # newer Go: maxArgs 0 means "no arguments"; 1.43 treated it as unlimited.
    **_on(ALL, "images extra", *EVERYTHING), **_on(ALL, "status extra", *EVERYTHING),
    **_on(ALL, "layers -- -t", *EVERYTHING), **_on(ALL, "layers -", *EVERYTHING),
    # 1.43 adds noexec,nosuid to read-only mounts, which vfs rejects, and btrfs refuses any
    # mount option; newer Go passes none (overlay takes them, so the same there).
    **_on(frozenset({"vfs", "btrfs"}), "mount -r img1", *EVERYTHING),
    # 1.43 reports no version pairs; newer Go prints "Version: ...".
    **_on(ALL, "version", "err"),
    # newer Go's flag is --read-only (alias --ro, -r): usage texts differ.
    **_on(ALL, "mount", "err"), **_on(ALL, "mount -h", "err"),
    # 1.43 deletes a layer with children when named by name (facts §12.1); we refuse, so
    # the two listings after it still show "top" (the 4th and 5th "layers"; by the 6th,
    # wipe has emptied both stores).
    **_on(ALL, "delete-layer top", "exit code", "err"),
    **_on(ALL, "layers", "out", nth=4), **_on(ALL, "layers", "out", nth=5),
    # 1.43 panics printing copy's usage (a flag with an empty name); we print the usage.
    **_on(ALL, "copy /x", "exit code", "err"),
    # HEAD's bats suite (image-mount.bats) gives a second image a name already in use,
    # moving it; 1.43 refuses it as a duplicate name.
    **_on(ALL, "create-image -n dup dupbase", *EVERYTHING, nth=2),
    # newer Go's unmount takes an image (its top layer) and reports the last unmount, as HEAD's
    # image-mount.bats expects; 1.43 falls back to UnmountImage and prints nothing.
    **_on(ALL, "unmount img1", "out"),
    # newer overlay's status adds "Supports shifting"/"Supports volatile".
    **_on(frozenset({"overlay"}), "status", "err"),
    **_on(frozenset({"overlay"}), "status --json", "out"),
}

KNOWN: dict[Key, frozenset[str]] = NEWER_GO


@pytest.mark.interop
def test_parity_script_is_long_enough() -> None:
    assert len(parity.STEPS) >= 150
    commands = {step.split(" ", 1)[0] for step in parity.STEPS}
    assert len(commands) >= 60


def test_every_exemption_names_a_step_that_runs() -> None:
    runs = {(step, n) for step in set(parity.STEPS) for n in range(1, parity.STEPS.count(step) + 1)}
    assert [key for key in KNOWN if key[:2] not in runs] == []
    assert all(drivers <= ALL for drivers in KNOWN.values())


@pytest.mark.interop
@pytest.mark.parametrize("driver", DRIVERS)
def test_parity_with_go_cli(tmp_path: Path, driver: str) -> None:
    with driver_home(driver, tmp_path) as home:
        go, ours = parity.twins(home)
        try:
            diffs = parity.compare(go, ours, home / "files", driver)
        finally:
            for twin in (go, ours):
                twin.run("shutdown -f", home / "files", driver)
            unmount_under(home)
    found = {(d.step, d.nth, d.what) for d in diffs}
    unexpected = [d for d in diffs if driver not in KNOWN.get((d.step, d.nth, d.what), ())]
    report = "\n".join(f"== {d.step!r} (run {d.nth}, {d.what})\n-- go:\n{d.go}\n-- ours:\n{d.ours}"
                       for d in unexpected)
    assert not unexpected, f"{len(unexpected)} unexpected differences on {driver}:\n{report}"
    stale = sorted(key for key, drivers in KNOWN.items() if driver in drivers and key not in found)
    assert stale == [], f"exemptions that match no difference on {driver} (remove them): {stale}"
