"""Mounting overlay filesystems: the new mount API first, ``mount(2)`` as the fallback.

With the new API every lower directory is its own ``fsconfig(lowerdir+)`` call, so the
page-size limit on mount data disappears; a lower may also be a file descriptor (a detached
mount, kernel 6.13+), which is how deep stacks nest read-only overlays without ever showing
them in the mount table. Old kernels get Go's behaviour: one option string, made short by
naming lowers relative to the driver home (we chdir there, under a lock, for the call).
"""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Sequence
from pathlib import Path

from cs_core.drivers.api import define, field
from cs_core.drivers.api import is_mountpoint as is_mountpoint  # by mount ID, for our callers
from cs_overlay import syscalls

#: Go ``mount.ParseOptions``: option name -> (clear?, flag).
_FLAG_OPTIONS: dict[str, tuple[bool, int]] = {
    "defaults": (False, 0), "ro": (False, syscalls.MS_RDONLY), "rw": (True, syscalls.MS_RDONLY),
    "suid": (True, syscalls.MS_NOSUID), "nosuid": (False, syscalls.MS_NOSUID),
    "dev": (True, syscalls.MS_NODEV), "nodev": (False, syscalls.MS_NODEV),
    "exec": (True, syscalls.MS_NOEXEC), "noexec": (False, syscalls.MS_NOEXEC),
    "sync": (False, syscalls.MS_SYNCHRONOUS), "async": (True, syscalls.MS_SYNCHRONOUS),
    "dirsync": (False, syscalls.MS_DIRSYNC), "remount": (False, syscalls.MS_REMOUNT),
    "mand": (False, syscalls.MS_MANDLOCK), "nomand": (True, syscalls.MS_MANDLOCK),
    "atime": (True, syscalls.MS_NOATIME), "noatime": (False, syscalls.MS_NOATIME),
    "diratime": (True, syscalls.MS_NODIRATIME), "nodiratime": (False, syscalls.MS_NODIRATIME),
    "relatime": (False, syscalls.MS_RELATIME), "norelatime": (True, syscalls.MS_RELATIME),
    "strictatime": (False, syscalls.MS_STRICTATIME), "nostrictatime": (True, syscalls.MS_STRICTATIME),
}

_chdir_lock = threading.Lock()
_new_api: bool | None = None  # None: not tried yet
_fd_lowers: bool | None = None
#: fsconfig copies at most 256 bytes of a string value.
_FSCONFIG_MAX = 255


def parse_options(options: Sequence[str]) -> tuple[int, list[str]]:
    """Split options into mount flags and filesystem data (Go ``mount.ParseOptions``)."""
    flags = 0
    data = []
    for opt in options:
        if not opt:
            continue
        known = _FLAG_OPTIONS.get(opt)
        if known is None:
            data.append(opt)
        elif known[0]:
            flags &= ~known[1]
        else:
            flags |= known[1]
    return flags, data


@define
class OverlayMount:
    """What to mount: lowers top first (paths, or fds of detached mounts), optional upper."""

    lowers: list[str | int]
    upper: str | None = None
    work: str | None = None
    options: list[str] = field(factory=list)

    def data_string(self, relative_to: Path | None = None) -> str:
        def name(p: str | int) -> str:
            if isinstance(p, int):
                raise ValueError("a file-descriptor lower needs the new mount API")
            prefix = f"{relative_to}/"
            if relative_to is not None and p.startswith(prefix):
                return p[len(prefix):]  # not relpath: it would fold "l/LINK/../diff1" lexically
            return p

        if self.upper is None:
            parts = ["lowerdir=" + ":".join(name(p) for p in self.lowers)]
        else:
            parts = ["lowerdir=" + ":".join(name(p) for p in self.lowers),
                     f"upperdir={name(self.upper)}", f"workdir={name(self.work or '')}"]
        _, data = parse_options(self.options)
        return ",".join(parts + data)


def _probe_new_api() -> bool:
    """Whether overlay takes ``lowerdir+`` through fsconfig (kernel 6.8+): try it on "/"."""
    try:
        fd = syscalls.fsopen("overlay")
    except OSError:
        return False
    try:
        syscalls.fsconfig_string(fd, "lowerdir+", "/")
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def _probe_fd_lowers() -> bool:
    """Whether overlay takes lower layers as file descriptors (kernel 6.13+)."""
    fd = syscalls.fsopen("overlay")
    root = os.open("/", os.O_PATH | os.O_DIRECTORY)
    try:
        syscalls.fsconfig_fd(fd, "lowerdir+", root)
        return True
    except OSError:
        return False
    finally:
        os.close(root)
        os.close(fd)


def new_api_usable() -> bool:
    global _new_api
    if not syscalls.has_new_mount_api():
        return False
    if _new_api is None:
        _new_api = _probe_new_api()
    return _new_api


def fd_lowers_usable() -> bool:
    global _fd_lowers
    if not new_api_usable():
        return False
    if _fd_lowers is None:
        _fd_lowers = _probe_fd_lowers()
    return _fd_lowers


def _attrs_from_flags(flags: int) -> int:
    out = 0
    for flag, attr in syscalls.FLAG_TO_ATTR.items():
        if flags & flag:
            out |= attr
    return out


def _set_path(fd: int, key: str, path: str | int, opened: list[int]) -> None:
    if isinstance(path, int):
        syscalls.fsconfig_fd(fd, key, path)
    elif len(os.fsencode(path)) > _FSCONFIG_MAX:
        pfd = os.open(path, os.O_PATH | os.O_DIRECTORY)
        opened.append(pfd)
        syscalls.fsconfig_fd(fd, key, pfd)
    else:
        syscalls.fsconfig_string(fd, key, path)


def _configure(fd: int, spec: OverlayMount, opened: list[int]) -> None:
    syscalls.fsconfig_string(fd, "source", "overlay")
    for lower in spec.lowers:
        _set_path(fd, "lowerdir+", lower, opened)
    if spec.upper is not None:
        _set_path(fd, "upperdir", spec.upper, opened)
        _set_path(fd, "workdir", spec.work or "", opened)
    _, data = parse_options(spec.options)
    for opt in data:
        key, sep, value = opt.partition("=")
        if sep:
            syscalls.fsconfig_string(fd, key, value.strip('"') if key.endswith("context") else value)
        else:
            syscalls.fsconfig_flag(fd, key)


def _needs_fds(spec: OverlayMount) -> bool:
    paths = [*spec.lowers, spec.upper or "", spec.work or ""]
    return any(isinstance(p, str) and len(os.fsencode(p)) > _FSCONFIG_MAX for p in paths)


def fsmount_overlay(spec: OverlayMount) -> int:
    """Create the overlay and return a detached mount fd (the caller closes it)."""
    flags, _ = parse_options(spec.options)
    fd = syscalls.fsopen("overlay")
    opened: list[int] = []
    try:
        _configure(fd, spec, opened)
        syscalls.fsconfig_create(fd)
        return syscalls.fsmount(fd, _attrs_from_flags(flags))
    finally:
        os.close(fd)
        for o in opened:
            os.close(o)


def mount_overlay(spec: OverlayMount, target: str, home: Path) -> None:
    """Mount ``spec`` on ``target``; raise OSError with the kernel's reason on failure."""
    # fsconfig copies at most 256 bytes of a path; longer ones go as fds (6.13+) or, failing
    # that, through the legacy call with paths relative to the home.
    if new_api_usable() and (fd_lowers_usable() or not _needs_fds(spec)):
        mfd = fsmount_overlay(spec)
        try:
            syscalls.move_mount(mfd, target)
        finally:
            os.close(mfd)
        return
    legacy_mount(spec, target, home)


def legacy_mount(spec: OverlayMount, target: str, home: Path) -> None:
    flags, _ = parse_options(spec.options)
    data = spec.data_string()
    if len(data) < os.sysconf("SC_PAGE_SIZE"):
        syscalls.mount("overlay", target, "overlay", flags, data)
        return
    # Go's mountFrom: relative names from the home keep the data under a page.
    data = spec.data_string(relative_to=home)
    if len(data) >= os.sysconf("SC_PAGE_SIZE"):
        raise OSError(errno.E2BIG, f"mount data too large ({len(data)} bytes) and this kernel "
                      "lacks the new mount API (lowerdir+)")
    with _chdir_lock:
        cwd = os.open(".", os.O_PATH | os.O_DIRECTORY)
        try:
            os.chdir(home)
            syscalls.mount("overlay", target, "overlay", flags, data)
        finally:
            os.fchdir(cwd)
            os.close(cwd)


def force_legacy(value: bool) -> None:
    """Tests: pretend the kernel has no new mount API (True) or reset detection (False)."""
    global _new_api
    _new_api = False if value else None


def mountinfo_targets() -> dict[str, str]:
    """Mount point -> filesystem type, from /proc/self/mountinfo (last mount wins)."""
    out = {}
    with open("/proc/self/mountinfo", "rb") as fh:
        for line in fh:
            fields = line.split(b" ")
            sep = fields.index(b"-")
            point = fields[4].decode("utf-8", "surrogateescape")
            point = point.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n") \
                .replace("\\134", "\\")
            out[point] = fields[sep + 1].decode()
    return out



def make_private(path: str) -> None:
    """Go ``mount.MakePrivate``: bind-mount ``path`` onto itself if needed, then mark it private."""
    if not is_mountpoint(path):
        syscalls.mount(path, path, "none", syscalls.MS_BIND)
    syscalls.mount("", path, "none", syscalls.MS_PRIVATE)


def unmount(path: str, flags: int = syscalls.MNT_DETACH) -> None:
    try:
        syscalls.umount(path, flags)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOENT):
            raise
