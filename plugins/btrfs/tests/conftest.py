"""Fixtures: a loopback btrfs for the run (and a second one with quotas on), a fresh driver home
per test, and teardown that unmounts whatever a test left mounted under its directory."""

from __future__ import annotations

import contextlib
import itertools
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cs_btrfs import fs
from cs_btrfs.driver import BtrfsDriver

from cs_core.drivers.base import DriverConfig
from cs_core.testing import require_privileged, requires_command
from cs_core.testing.loopfs import loop_filesystem

_counter = itertools.count()


def _loop_btrfs(size: str) -> Iterator[Path]:
    require_privileged("btrfs tests need root, loop devices and mounts")
    requires_command("mkfs.btrfs", "losetup")
    with loop_filesystem("btrfs", size) as mnt:
        yield mnt


@pytest.fixture(scope="session")
def btrfs_mount() -> Iterator[Path]:
    """A btrfs without quotas, shared by the whole run."""
    yield from _loop_btrfs("2G")


@pytest.fixture(scope="module")
def quota_mount() -> Iterator[Path]:
    """A separate btrfs for quota tests: enabling qgroups is filesystem-wide and slows every write."""
    yield from _loop_btrfs("1G")


def unmount_all_under(root: Path) -> None:
    prefix = str(root.resolve()) + "/"
    with open("/proc/self/mountinfo", encoding="utf-8") as fh:
        targets = [line.split(" ")[4] for line in fh]
    for target in sorted((t for t in targets if t.startswith(prefix)), key=len, reverse=True):
        with contextlib.suppress(OSError):
            fs.unmount(target)


def subvolume_paths(mnt: Path) -> list[str]:
    """Live subvolumes of the filesystem at ``mnt`` (as ``btrfs subvolume list`` prints them).

    A deleted subvolume loses its root reference at once, so it is not listed even while the
    cleaner has yet to free its blocks.
    """
    out = subprocess.run(["btrfs", "subvolume", "list", str(mnt)], check=True, capture_output=True,
                         text=True).stdout
    return [line.split(" path ", 1)[1] for line in out.splitlines() if " path " in line]


def _fresh_dir(mnt: Path, label: str) -> Iterator[Path]:
    root = mnt / f"{label}-{os.getpid()}-{next(_counter)}"
    root.mkdir()
    try:
        yield root
    finally:
        unmount_all_under(root)


@pytest.fixture
def graph_dir(btrfs_mount: Path) -> Iterator[Path]:
    """A per-test directory on the shared btrfs holding ``graph/`` and ``run/``."""
    yield from _fresh_dir(btrfs_mount, "t")


@pytest.fixture
def quota_dir(quota_mount: Path) -> Iterator[Path]:
    yield from _fresh_dir(quota_mount, "q")


DriverFactory = Callable[..., BtrfsDriver]


def _factory(root: Path) -> Iterator[DriverFactory]:
    made: list[BtrfsDriver] = []

    def make(*options: str) -> BtrfsDriver:
        graph, run = root / "graph", root / "run"
        d = BtrfsDriver(DriverConfig(home=graph / "btrfs", run_home=run / "btrfs", graph_root=graph,
                                     run_root=run, options=tuple(options)))
        made.append(d)
        return d

    try:
        yield make
    finally:
        for d in made:
            d.cleanup()


@pytest.fixture
def make_driver(graph_dir: Path) -> Iterator[DriverFactory]:
    yield from _factory(graph_dir)


@pytest.fixture
def make_quota_driver(quota_dir: Path) -> Iterator[DriverFactory]:
    yield from _factory(quota_dir)


@pytest.fixture
def driver(make_driver: DriverFactory) -> BtrfsDriver:
    return make_driver()
