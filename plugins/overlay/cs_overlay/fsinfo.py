"""Backing-filesystem identification (Go ``graphdriver.GetFSMagic`` / ``FsNames``)."""

from __future__ import annotations

import ctypes
import os

from cs_core.drivers.api import WRITE_FLAGS, is_rootless
from cs_core.drivers.api import fs_magic as fs_magic  # re-exported for our callers

AUFS = 0x61756673
ECRYPTFS = 0xF15F
OVERLAY = 0x794C7630
ZFS = 0x2FC12FC1
XFS = 0x58465342
FUSE = 0x65735546

FS_NAMES = {
    AUFS: "aufs", 0x9123683E: "btrfs", 0x28CD3D45: "cramfs", ECRYPTFS: "ecryptfs",
    0x0000EF53: "extfs", 0xF2F52010: "f2fs", 0x47504653: "gpfs", 0x000072B6: "jffs2",
    0x3153464A: "jfs", 0x00006969: "nfs", OVERLAY: "overlayfs", 0x858458F6: "ramfs",
    0x52654973: "reiserfs", 0x0000517B: "smb", 0x73717368: "squashfs", 0x01021994: "tmpfs",
    0xA501FCF5: "vxfs", XFS: "xfs", ZFS: "zfs",
}

#: Filesystems on which native overlay cannot put its upper/lower dirs (Go refuses them).
INCOMPATIBLE = {AUFS, ZFS, OVERLAY, ECRYPTFS}


_libc = ctypes.CDLL(None, use_errno=True)  # the loaded libc; find_library would run ldconfig


def home_magic(home: str | os.PathLike[str]) -> int:
    """Magic of the filesystem holding ``home`` (Go stats its parent: home may not exist yet)."""
    return fs_magic(os.path.dirname(os.path.abspath(home)))


def fs_name(magic: int) -> str:
    return FS_NAMES.get(magic, "<unknown>")


def supports_d_type(path: str | os.PathLike[str]) -> bool:
    """Whether readdir reports entry types (overlay needs them to find whiteouts)."""
    probe = os.path.join(path, ".dtype-probe")
    os.close(os.open(probe, WRITE_FLAGS, 0o600))
    try:
        with os.scandir(path) as it:
            for entry in it:
                # scandir fills is_file() from d_type without a stat when d_type is known;
                # DT_UNKNOWN forces a stat, which we detect through the cached inode call.
                if entry.name == ".dtype-probe":
                    return _dtype_known(path, entry.name)
        return False
    finally:
        os.unlink(probe)


def _dtype_known(path: str | os.PathLike[str], name: str) -> bool:
    class _Dirent(ctypes.Structure):
        _fields_ = [("d_ino", ctypes.c_uint64), ("d_off", ctypes.c_int64),
                    ("d_reclen", ctypes.c_ushort), ("d_type", ctypes.c_ubyte),
                    ("d_name", ctypes.c_char * 256)]

    _libc.opendir.restype = ctypes.c_void_p
    _libc.opendir.argtypes = [ctypes.c_char_p]
    _libc.readdir.restype = ctypes.POINTER(_Dirent)
    _libc.readdir.argtypes = [ctypes.c_void_p]
    _libc.closedir.argtypes = [ctypes.c_void_p]
    d = _libc.opendir(os.fsencode(path))
    if not d:
        return False
    try:
        while True:
            ent = _libc.readdir(d)
            if not ent:
                return False
            if ent.contents.d_name == os.fsencode(name):
                return bool(ent.contents.d_type != 0)
    finally:
        _libc.closedir(d)


def rootless() -> bool:
    """Go ``unshare.IsRootless`` (one rule for all of cs_core: cs_core.userns.rootless).

    There, trusted.* xattrs are off limits, so overlay needs ``userxattr`` and user.overlay.*.
    """
    return is_rootless()
