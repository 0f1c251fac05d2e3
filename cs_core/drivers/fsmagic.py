"""``statfs(2)``'s filesystem type, which Python's ``os.statvfs`` does not return.

Drivers decide by it whether they can work on a home (btrfs needs btrfs; overlay refuses
some backing filesystems), as Go's ``graphdriver.GetFSMagic`` does.
"""

from __future__ import annotations

import ctypes
import os


class _Statfs(ctypes.Structure):
    _fields_ = [
        ("f_type", ctypes.c_long), ("f_bsize", ctypes.c_long), ("f_blocks", ctypes.c_ulong),
        ("f_bfree", ctypes.c_ulong), ("f_bavail", ctypes.c_ulong), ("f_files", ctypes.c_ulong),
        ("f_ffree", ctypes.c_ulong), ("f_fsid", ctypes.c_int * 2), ("f_namelen", ctypes.c_long),
        ("f_frsize", ctypes.c_long), ("f_flags", ctypes.c_long), ("f_spare", ctypes.c_long * 4),
    ]


_libc = ctypes.CDLL(None, use_errno=True)  # the loaded libc; find_library would run ldconfig
_libc.statfs.argtypes = [ctypes.c_char_p, ctypes.POINTER(_Statfs)]


def fs_magic(path: str | os.PathLike[str]) -> int:
    """The ``f_type`` of the filesystem holding ``path``, or its nearest existing ancestor
    (a driver's home may not exist yet)."""
    p = os.path.abspath(path)
    while not os.path.exists(p) and p != "/":
        p = os.path.dirname(p)
    buf = _Statfs()
    if _libc.statfs(os.fsencode(p), ctypes.byref(buf)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), p)
    return int(buf.f_type) & 0xFFFFFFFF
