"""Thin ctypes wrappers over the Linux mount system calls the driver needs.

The legacy ``mount(2)`` takes all overlay options in one string that must fit in a page; the
new mount API (``fsopen``/``fsconfig``/``fsmount``/``move_mount``) takes them one at a time,
which lifts that limit (``lowerdir+`` per layer, kernel 6.8+) and lets layers be passed as file
descriptors (6.13+), including detached mounts that never appear in any mount table.
"""

from __future__ import annotations

import ctypes
import os
import platform

_libc = ctypes.CDLL(None, use_errno=True)  # the loaded libc; find_library would run ldconfig
_libc.syscall.restype = ctypes.c_long
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                        ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]

# Syscall numbers are per architecture; these two cover the machines we build for.
_NR = {
    "x86_64": {"fsopen": 430, "fsconfig": 431, "fsmount": 432, "move_mount": 429,
               "open_tree": 428, "mount_setattr": 442},
    "aarch64": {"fsopen": 430, "fsconfig": 431, "fsmount": 432, "move_mount": 429,
                "open_tree": 428, "mount_setattr": 442},
}.get(platform.machine(), {})

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_SYNCHRONOUS = 0x10
MS_REMOUNT = 0x20
MS_MANDLOCK = 0x40
MS_DIRSYNC = 0x80
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24

MNT_FORCE = 1
MNT_DETACH = 2

FSOPEN_CLOEXEC = 1
FSMOUNT_CLOEXEC = 1
FSCONFIG_SET_FLAG = 0
FSCONFIG_SET_STRING = 1
FSCONFIG_SET_FD = 5
FSCONFIG_CMD_CREATE = 6
MOVE_MOUNT_F_EMPTY_PATH = 0x4
AT_FDCWD = -100

MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
MOUNT_ATTR_NOEXEC = 0x8
MOUNT_ATTR_NOATIME = 0x10
MOUNT_ATTR_STRICTATIME = 0x20
MOUNT_ATTR_NODIRATIME = 0x80
MOUNT_ATTR_IDMAP = 0x100000

OPEN_TREE_CLONE = 1
OPEN_TREE_CLOEXEC = 0o2000000
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
CLONE_NEWUSER = 0x10000000

#: mount(2) flags that have a per-mount attribute in the new API.
FLAG_TO_ATTR = {
    MS_RDONLY: MOUNT_ATTR_RDONLY,
    MS_NOSUID: MOUNT_ATTR_NOSUID,
    MS_NODEV: MOUNT_ATTR_NODEV,
    MS_NOEXEC: MOUNT_ATTR_NOEXEC,
    MS_NOATIME: MOUNT_ATTR_NOATIME,
    MS_STRICTATIME: MOUNT_ATTR_STRICTATIME,
    MS_NODIRATIME: MOUNT_ATTR_NODIRATIME,
}


def _check(ret: int, what: str, path: str | None = None) -> int:
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}", path)
    return ret


def _b(s: str | None) -> bytes | None:
    return None if s is None else os.fsencode(s)


def mount(source: str, target: str, fstype: str | None, flags: int = 0, data: str | None = None) -> None:
    _check(_libc.mount(_b(source), _b(target), _b(fstype), flags, _b(data)), "mount", target)


def umount(target: str, flags: int = 0) -> None:
    _check(_libc.umount2(_b(target), flags), "umount", target)


def has_new_mount_api() -> bool:
    return bool(_NR)


def fsopen(fstype: str) -> int:
    return _check(_libc.syscall(_NR["fsopen"], _b(fstype), FSOPEN_CLOEXEC), f"fsopen {fstype}")


def fsconfig_string(fd: int, key: str, value: str) -> None:
    _check(
        _libc.syscall(_NR["fsconfig"], fd, FSCONFIG_SET_STRING, _b(key), _b(value), 0),
        f"fsconfig {key}={value}",
    )


def fsconfig_flag(fd: int, key: str) -> None:
    _check(_libc.syscall(_NR["fsconfig"], fd, FSCONFIG_SET_FLAG, _b(key), None, 0), f"fsconfig {key}")


def fsconfig_fd(fd: int, key: str, value_fd: int) -> None:
    _check(_libc.syscall(_NR["fsconfig"], fd, FSCONFIG_SET_FD, _b(key), None, value_fd),
           f"fsconfig {key}=<fd>")


def fsconfig_create(fd: int) -> None:
    _check(_libc.syscall(_NR["fsconfig"], fd, FSCONFIG_CMD_CREATE, None, None, 0), "fsconfig create")


def fsmount(fd: int, attr_flags: int = 0) -> int:
    return _check(_libc.syscall(_NR["fsmount"], fd, FSMOUNT_CLOEXEC, attr_flags), "fsmount")


def move_mount(mount_fd: int, target: str) -> None:
    _check(
        _libc.syscall(_NR["move_mount"], mount_fd, b"", AT_FDCWD, _b(target), MOVE_MOUNT_F_EMPTY_PATH),
        "move_mount", target,
    )


RENAME_EXCHANGE = 2
_libc.renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]


def rename_exchange(a: str, b: str) -> None:
    """Swap two paths atomically (``renameat2(RENAME_EXCHANGE)``): both exist before and after."""
    _check(_libc.renameat2(AT_FDCWD, _b(a), AT_FDCWD, _b(b), RENAME_EXCHANGE), "rename", a)
class _MountAttr(ctypes.Structure):
    """``struct mount_attr`` (linux/mount.h), version 0: 32 bytes."""

    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def open_tree(path: str, flags: int) -> int:
    return _check(_libc.syscall(_NR["open_tree"], AT_FDCWD, _b(path), flags), "open_tree", path)


def mount_setattr_idmap(tree_fd: int, userns_fd: int) -> None:
    """Make the detached mount ``tree_fd`` (and its submounts) ID-mapped through ``userns_fd``."""
    attr = _MountAttr(MOUNT_ATTR_IDMAP, 0, 0, userns_fd)
    _check(_libc.syscall(_NR["mount_setattr"], tree_fd, b"", AT_EMPTY_PATH | AT_RECURSIVE,
                         ctypes.byref(attr), ctypes.sizeof(attr)), "mount_setattr")


def unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")
