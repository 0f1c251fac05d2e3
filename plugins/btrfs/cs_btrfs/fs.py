"""Filesystem facts and mounts of the driver home: statfs magic, private bind mount."""

from __future__ import annotations

import ctypes
import os

from cs_core.drivers.api import is_mountpoint as is_mountpoint  # by mount ID, for our callers

BTRFS_SUPER_MAGIC = 0x9123683E
MS_BIND = 0x1000
MS_PRIVATE = 1 << 18
MNT_DETACH = 2

_libc = ctypes.CDLL(None, use_errno=True)  # the loaded libc; find_library would run ldconfig


class _Statfs(ctypes.Structure):
    _fields_ = [
        ("f_type", ctypes.c_long), ("f_bsize", ctypes.c_long), ("f_blocks", ctypes.c_ulong),
        ("f_bfree", ctypes.c_ulong), ("f_bavail", ctypes.c_ulong), ("f_files", ctypes.c_ulong),
        ("f_ffree", ctypes.c_ulong), ("f_fsid", ctypes.c_int * 2), ("f_namelen", ctypes.c_long),
        ("f_frsize", ctypes.c_long), ("f_flags", ctypes.c_long), ("f_spare", ctypes.c_long * 4),
    ]


_libc.statfs.argtypes = [ctypes.c_char_p, ctypes.POINTER(_Statfs)]
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]


def _raise(path: str) -> None:
    err = ctypes.get_errno()
    raise OSError(err, os.strerror(err), path)


def fs_magic(path: str | os.PathLike[str]) -> int:
    """The statfs ``f_type`` of ``path``, or of its nearest existing ancestor (Go GetFSMagic on the home)."""
    p = os.path.abspath(path)
    while not os.path.exists(p) and p != "/":
        p = os.path.dirname(p)
    buf = _Statfs()
    if _libc.statfs(os.fsencode(p), ctypes.byref(buf)) != 0:
        _raise(p)
    return int(buf.f_type) & 0xFFFFFFFF



def make_private(path: str) -> None:
    """Go ``mount.MakePrivate``: bind ``path`` onto itself unless it is a mount, then mark it private."""
    raw = os.fsencode(path)
    if not is_mountpoint(path) and _libc.mount(raw, raw, b"none", MS_BIND, None) != 0:
        _raise(path)
    if _libc.mount(b"", raw, b"none", MS_PRIVATE, None) != 0:
        _raise(path)


def unmount(path: str) -> None:
    if _libc.umount2(os.fsencode(path), MNT_DETACH) != 0:
        _raise(path)
