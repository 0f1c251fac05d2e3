"""mountpoints.json is trusted for counts only; mount points are checked by mount ID.

The file lives in the run root. A forged record must not make ``mount`` hand out (or ``check``
walk) a path outside the store, nor make one layer's mount pass for another's; and a mount
that mountinfo still lists but that a later bind mount hid must not count as mounted.
"""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cs_core.testing import require_privileged

MS_BIND, MNT_DETACH = 0x1000, 2
_libc = ctypes.CDLL(None, use_errno=True)


def _cli(root: Path, driver: str, *args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "cs_core", "-g", str(root / "g"), "-R",
                           str(root / "r"), "-s", driver, *args],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
    return proc.stdout


def _forge(root: Path, driver: str, records: list[dict[str, object]]) -> None:
    (root / "r" / f"{driver}-layers" / "mountpoints.json").write_text(json.dumps(records))


def test_forged_vfs_mount_point_is_not_returned(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("host file\n")
    layer = _cli(tmp_path, "vfs", "create-layer").strip()
    _forge(tmp_path, "vfs", [{"id": layer, "path": str(outside), "count": 1}])
    mine = str(tmp_path / "g" / "vfs" / "dir" / layer)
    assert f"mount: {mine}" in _cli(tmp_path, "vfs", "layers", "-t")  # not the forged path
    assert _cli(tmp_path, "vfs", "mount", layer).strip() == mine
    records = json.loads((tmp_path / "r" / "vfs-layers" / "mountpoints.json").read_text())
    assert records == [{"id": layer, "path": mine, "count": 2}]  # Go's shape, our path
    assert str(outside) not in _cli(tmp_path, "vfs", "layers", "-t")
    # Go 1.43 believes a recorded path if anything is mounted there: it returns /proc.
    _forge(tmp_path, "vfs", [{"id": layer, "path": "/proc", "count": 1}])
    assert _cli(tmp_path, "vfs", "mount", layer).strip() == mine


@pytest.fixture
def overlay_root(tmp_path: Path) -> Iterator[Path]:
    require_privileged("overlay mounts need root")
    from cs_overlay.testing import unmount_all_under

    try:
        yield tmp_path
    finally:
        subprocess.run([sys.executable, "-m", "cs_core", "-g", str(tmp_path / "g"), "-R",
                        str(tmp_path / "r"), "-s", "overlay", "shutdown", "-f"],
                       capture_output=True, timeout=120)
        unmount_all_under(tmp_path)


def test_forged_overlay_record_does_not_pass_off_another_layers_mount(overlay_root: Path) -> None:
    from cs_overlay import mounting

    root = overlay_root
    a = _cli(root, "overlay", "create-layer").strip()
    b = _cli(root, "overlay", "create-layer").strip()
    a_merged = _cli(root, "overlay", "mount", a).strip()
    # b "is mounted" at a's merged/, and a mount really is there: path matching believed it.
    _forge(root, "overlay", [{"id": a, "path": a_merged, "count": 1},
                             {"id": b, "path": a_merged, "count": 1}])
    b_merged = _cli(root, "overlay", "mount", b).strip()
    assert b_merged == str(root / "g" / "overlay" / b / "merged")
    assert mounting.is_mountpoint(b_merged, ("overlay",))
    os.mknod(Path(b_merged) / "only-in-b")
    assert not (Path(a_merged) / "only-in-b").exists()


def _bind(source: Path, target: Path) -> None:
    if _libc.mount(str(source).encode(), str(target).encode(), b"none", MS_BIND, None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), str(target))


def _detach_all(root: Path) -> None:
    """Detach every mount under ``root``, hidden ones too: each round detaches what the paths
    show, which uncovers what they hid."""
    prefix = f" {root}/"
    for _ in range(8):
        points = sorted({line.split(" ")[4] for line in Path("/proc/self/mountinfo").read_text()
                         .splitlines() if prefix in line}, key=len, reverse=True)
        if not points:
            return
        for point in points:
            _libc.umount2(point.encode(), MNT_DETACH)
    raise AssertionError(f"mounts left under {root}")


def _hidden_mount(tmp_path: Path, name: str = "home") -> Path:
    """``outer/NAME`` bind-mounted onto itself, then hidden by a (non-recursive) bind mount of
    ``outer`` onto itself: mountinfo still lists ``outer/NAME``, but it shows a plain dir."""
    home = tmp_path / "outer" / name
    home.mkdir(parents=True)
    _bind(home, home)
    _bind(tmp_path / "outer", tmp_path / "outer")
    return home


def _make_private_funcs() -> list[tuple[Callable[[str], bool], Callable[[str], None]]]:
    from cs_btrfs import fs
    from cs_overlay import mounting

    return [(mounting.is_mountpoint, mounting.make_private), (fs.is_mountpoint, fs.make_private)]


@pytest.mark.parametrize("driver", ["overlay", "btrfs"])
def test_hidden_mount_is_not_a_mount_point(tmp_path: Path, driver: str) -> None:
    require_privileged("bind mounts need root")
    is_mountpoint, make_private = _make_private_funcs()[0 if driver == "overlay" else 1]
    home = _hidden_mount(tmp_path)
    try:
        assert f" {home} " in Path("/proc/self/mountinfo").read_text()  # still listed...
        assert not is_mountpoint(str(home))  # ...but not what the path shows
        make_private(str(home))  # so the driver makes its own bind mount, and can mark it
        assert is_mountpoint(str(home))
        assert is_mountpoint(str(tmp_path / "outer")) and not is_mountpoint(str(tmp_path))
    finally:
        _detach_all(tmp_path)


def test_overlay_driver_starts_over_a_hidden_home_mount(tmp_path: Path) -> None:
    require_privileged("overlay mounts need root")
    graph = tmp_path / "outer"
    _hidden_mount(tmp_path, "overlay")  # the driver's home, as a killed run leaves
    try:
        proc = subprocess.run([sys.executable, "-m", "cs_core", "-g", str(graph), "-R",
                               str(tmp_path / "r"), "-s", "overlay", "layers"],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    finally:
        _detach_all(tmp_path)
