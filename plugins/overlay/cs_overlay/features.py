"""Kernel feature probes, each a throw-away test mount, cached in the run home as Go does.

Cache files are ``<run_home>/<feature>-true`` or ``-false`` (the latter holding the reason),
so Go and we share the results and a reboot (a fresh run root) re-probes.
"""

from __future__ import annotations

import contextlib
import os
import stat
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

from cs_core.drivers.api import remove_tree, walk, write_in_place
from cs_overlay import fsinfo, syscalls
from cs_overlay.mounting import parse_options


def cached(run_home: Path, feature: str) -> tuple[bool, str] | None:
    for value in (True, False):
        try:
            return value, (run_home / f"{feature}-{'true' if value else 'false'}").read_text()
        except FileNotFoundError:
            continue
    return None


def record(run_home: Path, feature: str, value: bool, text: str = "") -> None:
    with contextlib.suppress(OSError):
        write_in_place(run_home / f"{feature}-{'true' if value else 'false'}",
                              text.encode(), 0o644)


def check(run_home: Path, feature: str, probe: Callable[[], tuple[bool, str]]) -> tuple[bool, str]:
    hit = cached(run_home, feature)
    if hit is not None:
        return hit
    value, text = probe()
    record(run_home, feature, value, text)
    return value, text


@contextlib.contextmanager
def _scratch(home: Path, prefix: str) -> Iterator[Path]:
    import tempfile  # with random and shutil: only when a feature is probed

    td = Path(tempfile.mkdtemp(prefix=prefix, dir=home))
    try:
        yield td
    finally:
        with contextlib.suppress(OSError):
            syscalls.umount(str(td / "merged"), syscalls.MNT_DETACH)
        with contextlib.suppress(OSError):
            remove_tree(td)


def _xattr(name: str) -> str:
    """An overlay xattr name as the kernel reads it here (user.* under userxattr)."""
    return f"{'user' if fsinfo.rootless() else 'trusted'}.overlay.{name}"


def _mount(td: Path, data: str, mount_opts: str = "") -> None:
    flags, extra = parse_options(mount_opts.split(","))
    if fsinfo.rootless():
        extra.append("userxattr")
    if extra:
        data = f"{data},{','.join(extra)}"
    syscalls.mount("overlay", str(td / "merged"), "overlay", flags, data)


def _load_module() -> None:
    """Go runs ``modprobe overlay`` before its test mount; only needed when it is not loaded."""
    with contextlib.suppress(OSError):
        if "\toverlay\n" in Path("/proc/filesystems").read_text():
            return
    with contextlib.suppress(OSError):
        subprocess.run(["modprobe", "overlay"], capture_output=True, timeout=30)


def supports_overlay(home: Path, backing: str) -> tuple[bool, str]:
    """d_type, kernel-style whiteouts and a multi-lower test mount (Go ``supportsOverlay``)."""
    _load_module()
    try:
        with _scratch(home, "compat") as td:
            if not fsinfo.supports_d_type(td):
                return False, (f"'overlay' is not supported over {backing} at {home!s}: "
                               "backing file system does not support d_type")
            for d in ("merged", "lower1", "lower2", "upper", "work"):
                (td / d).mkdir(mode=0o700)
            try:
                os.mknod(td / "upper" / "whiteout", stat.S_IFCHR | 0o600, 0)
            except OSError as exc:
                return False, f"unable to create kernel-style whiteout: {exc.strerror}"
            try:
                _mount(td, f"lowerdir={td}/lower1:{td}/lower2,upperdir={td}/upper,workdir={td}/work")
            except OSError as exc:
                return False, f"'overlay' is not supported over {backing} at {str(home)!r}: {exc.strerror}"
            return True, ""
    except OSError as exc:
        return False, f"kernel does not support overlay fs: {exc}"


def native_diff_problem(home: Path, mount_opts: str) -> str:
    """Empty if the upper dir alone describes a layer's changes (Go ``doesSupportNativeDiff``)."""
    opaque = _xattr("opaque")
    with _scratch(home, "opaque-bug-check") as td:
        for d in ("l1/d", "l1/d1", "l2/d", "l3", "work", "merged"):
            (td / d).mkdir(parents=True, mode=0o755)
        os.setxattr(td / "l2" / "d", opaque, b"y")
        try:
            _mount(td, f"lowerdir={td}/l2:{td}/l1,upperdir={td}/l3,workdir={td}/work", mount_opts)
        except OSError as exc:
            return f"failed to mount overlay: {exc.strerror}"
        try:
            (td / "merged" / "d" / "f").write_bytes(b"")
            try:
                if os.getxattr(td / "l3" / "d", opaque) == b"y":
                    return "opaque flag erroneously copied up, consider update to kernel 4.8 or later to fix"
            except OSError:
                pass
            try:
                os.rename(td / "merged" / "d1", td / "merged" / "d2")
            except OSError as exc:
                if exc.errno == 18:  # EXDEV: no redirect_dir, renames copy
                    return ""
                return f"failed to rename dir in merged directory: {exc.strerror}"
            try:
                if os.getxattr(td / "l3" / "d2", _xattr("redirect")) == b"d1":
                    return "kernel has CONFIG_OVERLAY_FS_REDIRECT_DIR enabled"
            except OSError:
                pass
            return ""
        finally:
            syscalls.umount(str(td / "merged"), 0)


def does_metacopy(home: Path, mount_opts: str) -> bool:
    with _scratch(home, "metacopy-check") as td:
        for d in ("l1", "l2", "work", "merged"):
            (td / d).mkdir(mode=0o755)
        (td / "l1" / "f").write_bytes(b"\xff")
        os.chmod(td / "l1" / "f", 0o700)
        try:
            _mount(td, f"lowerdir={td}/l1,upperdir={td}/l2,workdir={td}/work", mount_opts)
        except OSError as exc:
            if exc.errno == 22:
                return False
            raise
        try:
            os.chmod(td / "merged" / "f", 0o600)
            try:
                os.getxattr(td / "l2" / "f", _xattr("metacopy"))
                return True
            except OSError:
                return False
        finally:
            syscalls.umount(str(td / "merged"), 0)


def does_volatile(home: Path) -> bool:
    with _scratch(home, "volatile-check") as td:
        for d in ("lower", "upper", "work", "merged"):
            (td / d).mkdir(mode=0o755)
        try:
            _mount(td, f"volatile,lowerdir={td}/lower,upperdir={td}/upper,workdir={td}/work")
        except OSError:
            return False
        syscalls.umount(str(td / "merged"), 0)
        return True


def mount_program_indicators(home: Path) -> bool:
    """Whether a store populated through fuse-overlayfs lives here (Go's scan, run once).

    AUFS-style ``.wh.`` files or fuse-overlayfs/containers xattrs on directories mean the layers
    were never meant for kernel overlay.
    """
    for d in walk(home):  # iterative, fd-relative: a deep layer cannot stop the open
        if any(e.name.startswith(".wh.") for e in d.entries):
            return True
        if d.parent_fd < 0:
            continue  # the home itself is not a layer directory
        try:
            names = os.listxattr(d.fd)
        except OSError:
            continue
        if any(x.startswith(("user.fuseoverlayfs.", "user.containers.")) for x in names):
            return True
    return False
