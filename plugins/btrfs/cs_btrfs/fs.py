"""Filesystem facts and mounts of the driver home: statfs magic, private bind mount."""

from __future__ import annotations

import ctypes
import os

from cs_core.drivers.api import fs_magic as fs_magic  # re-exported for our callers
from cs_core.drivers.api import is_mountpoint as is_mountpoint  # by mount ID

BTRFS_SUPER_MAGIC = 0x9123683E
MS_BIND = 0x1000
MS_PRIVATE = 1 << 18
MNT_DETACH = 2

_libc = ctypes.CDLL(None, use_errno=True)  # the loaded libc; find_library would run ldconfig


_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]


def _raise(path: str) -> None:
    err = ctypes.get_errno()
    raise OSError(err, os.strerror(err), path)



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
