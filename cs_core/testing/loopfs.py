"""Loopback filesystems for tests and benchmarks: made, mounted, and always torn down."""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

MKFS = {
    "btrfs": ["mkfs.btrfs", "-q", "-f"],
    "ext4": ["mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0"],
    "xfs": ["mkfs.xfs", "-q", "-f"],
}


def _run(*cmd: str) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip()


@contextlib.contextmanager
def loop_filesystem(
    fstype: str = "btrfs", size: str = "1G", *, workdir: str | os.PathLike[str] | None = None,
    mount_options: str = "",
) -> Iterator[Path]:
    """Create a sparse image file, format it, loop-mount it; yield the mount point.

    The mount is unmounted and the loop device detached on exit, whatever happens inside.
    Needs root.
    """
    base = Path(tempfile.mkdtemp(prefix=f"cs-loop-{fstype}-", dir=workdir))
    image = base / "image"
    mnt = base / "mnt"
    mnt.mkdir()
    with open(image, "wb") as fh:
        fh.truncate(_parse_size(size))
    device = ""
    mounted = False
    try:
        _run(*MKFS[fstype], str(image))
        device = _run("losetup", "--find", "--show", str(image))
        cmd = ["mount", "-t", fstype]
        if mount_options:
            cmd += ["-o", mount_options]
        _run(*cmd, device, str(mnt))
        mounted = True
        yield mnt
    finally:
        if mounted:
            # Lazy unmount as a fallback: a test that leaked an open file must not leave a mount.
            if subprocess.run(["umount", str(mnt)], capture_output=True).returncode != 0:
                subprocess.run(["umount", "-R", "-l", str(mnt)], capture_output=True)
        if device:
            subprocess.run(["losetup", "-d", device], capture_output=True)
        with contextlib.suppress(OSError):
            image.unlink()
        with contextlib.suppress(OSError):
            mnt.rmdir()
        with contextlib.suppress(OSError):
            base.rmdir()


def _parse_size(size: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    if size[-1].upper() in units:
        return int(float(size[:-1]) * units[size[-1].upper()])
    return int(size)


def unmount_under(path: Path) -> None:
    """Unmount everything mounted below ``path``, deepest first."""
    prefix = str(path)
    points = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4].replace("\\040", " ")
            if point == prefix or point.startswith(prefix + "/"):
                points.append(point)
    for point in sorted(points, key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)


@contextlib.contextmanager
def driver_home(driver: str, tmp_path: Path) -> Iterator[Path]:
    """Where a test's stores for *driver* go: btrfs gets a loopback btrfs of its own, the others
    use *tmp_path*. Fails under CS_REQUIRE_PRIVILEGED when the driver cannot run here."""
    from cs_core.drivers.plugins import PluginRegistry
    from cs_core.testing.privileged import require_privileged, requires_command, skip_or_fail

    if driver != "vfs":
        require_privileged(f"the {driver} driver needs root")
    if not PluginRegistry().load(driver).loaded:
        skip_or_fail(f"the {driver} driver is not installed")
    if driver != "btrfs":
        yield tmp_path
        return
    requires_command("mkfs.btrfs", "losetup")
    with loop_filesystem("btrfs", "1G") as mnt:
        yield mnt
