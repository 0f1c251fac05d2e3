"""XFS project quotas for writable layers (Go ``drivers/quota``), via ioctl and quotactl.

Each writable layer directory gets its own project ID (inherited by everything created
under it) and a block/inode limit on that project. IDs start at the home's own project ID,
or, when the home has none, at one derived from its inode so that several stores on one
filesystem do not collide.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import struct

from cs_core.drivers.api import frozen

PROJECT_IDS_PER_HOME = 10000
_MAX_UINT32 = 0xFFFFFFFF

# struct fsxattr { u32 xflags, extsize, nextents, projid, cowextsize; u8 pad[8]; } = 28 bytes
_FSXATTR = struct.Struct("=IIIII8s")
FS_IOC_FSGETXATTR = 0x801C581F
FS_IOC_FSSETXATTR = 0x401C5820
FS_XFLAG_PROJINHERIT = 0x200

# quotactl(QCMD(Q_XSETQLIM, PRJQUOTA)) with struct fs_disk_quota
_Q_XSETQLIM = 0x5804
_Q_XGETQUOTA = 0x5803
_PRJQUOTA = 2
FS_DQUOT_VERSION = 1
FS_PROJ_QUOTA = 2
FS_DQ_ISOFT, FS_DQ_IHARD, FS_DQ_BSOFT, FS_DQ_BHARD = 1 << 0, 1 << 1, 1 << 2, 1 << 3


def qcmd(cmd: int, kind: int) -> int:
    return (cmd << 8) | (kind & 0xFF)


class FsDiskQuota(ctypes.Structure):
    _fields_ = [
        ("d_version", ctypes.c_int8), ("d_flags", ctypes.c_int8), ("d_fieldmask", ctypes.c_uint16),
        ("d_id", ctypes.c_uint32), ("d_blk_softlimit", ctypes.c_uint64),
        ("d_blk_hardlimit", ctypes.c_uint64), ("d_ino_softlimit", ctypes.c_uint64),
        ("d_ino_hardlimit", ctypes.c_uint64), ("d_bcount", ctypes.c_uint64),
        ("d_icount", ctypes.c_uint64), ("d_itimer", ctypes.c_int32), ("d_btimer", ctypes.c_int32),
        ("d_iwarns", ctypes.c_uint16), ("d_bwarns", ctypes.c_uint16), ("d_itimer_hi", ctypes.c_int8),
        ("d_btimer_hi", ctypes.c_int8), ("d_rtbtimer_hi", ctypes.c_int8), ("d_padding2", ctypes.c_int8),
        ("d_rtb_hardlimit", ctypes.c_uint64), ("d_rtb_softlimit", ctypes.c_uint64),
        ("d_rtbcount", ctypes.c_uint64), ("d_rtbtimer", ctypes.c_int32), ("d_rtbwarns", ctypes.c_uint16),
        ("d_padding3", ctypes.c_int16), ("d_padding4", ctypes.c_char * 8),
    ]


@frozen
class Quota:
    size: int = 0
    inodes: int = 0


def derive_project_id(inode: int) -> int:
    """Go ``generateUniqueProjectID``: a base ID from the home's inode number."""
    return PROJECT_IDS_PER_HOME + (inode * PROJECT_IDS_PER_HOME) % (_MAX_UINT32 - PROJECT_IDS_PER_HOME)


def quota_record(project_id: int, quota: Quota) -> FsDiskQuota:
    """The ``fs_disk_quota`` Go passes to Q_XSETPQLIM (sizes in 512-byte blocks)."""
    d = FsDiskQuota()
    d.d_version = FS_DQUOT_VERSION
    d.d_id = project_id
    d.d_flags = FS_PROJ_QUOTA
    if quota.size > 0:
        d.d_fieldmask |= FS_DQ_BHARD | FS_DQ_BSOFT
        d.d_blk_hardlimit = d.d_blk_softlimit = quota.size // 512
    if quota.inodes > 0:
        d.d_fieldmask |= FS_DQ_IHARD | FS_DQ_ISOFT
        d.d_ino_hardlimit = d.d_ino_softlimit = quota.inodes
    return d


def get_project_id(path: str) -> int:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        buf = fcntl.ioctl(fd, FS_IOC_FSGETXATTR, bytes(_FSXATTR.size))
    except OSError as exc:
        raise OSError(exc.errno, f"failed to get projid for {path}: {exc.strerror}") from None
    finally:
        os.close(fd)
    return int(_FSXATTR.unpack(buf)[3])


def set_project_id(path: str, project_id: int) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        xflags, extsize, nextents, _, cow, pad = _FSXATTR.unpack(
            fcntl.ioctl(fd, FS_IOC_FSGETXATTR, bytes(_FSXATTR.size)))
        new = _FSXATTR.pack(xflags | FS_XFLAG_PROJINHERIT, extsize, nextents, project_id, cow, pad)
        fcntl.ioctl(fd, FS_IOC_FSSETXATTR, new)
    except OSError as exc:
        raise OSError(exc.errno, f"failed to set projid for {path}: {exc.strerror}") from None
    finally:
        os.close(fd)


_libc = ctypes.CDLL(None, use_errno=True)  # the loaded libc; find_library would run ldconfig
_libc.quotactl.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_void_p]


def set_project_quota(block_dev: str, project_id: int, quota: Quota) -> None:
    d = quota_record(project_id, quota)
    if _libc.quotactl(qcmd(_Q_XSETQLIM, _PRJQUOTA), os.fsencode(block_dev), project_id,
                      ctypes.byref(d)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"failed to set quota limit for projid {project_id} on {block_dev}: "
                      f"{os.strerror(err)}")


class QuotaControl:
    """Hands out project IDs under one home and sets their limits (Go ``quota.Control``)."""

    def __init__(self, home: str) -> None:
        base = get_project_id(home)
        if base == 0:
            base = derive_project_id(os.stat(home).st_ino)
        self.block_dev = self._make_block_dev(home)
        set_project_quota(self.block_dev, base, Quota())
        self.next_id = base + 1
        self.quotas: dict[str, int] = {}
        for entry in os.scandir(home):
            if entry.is_dir(follow_symlinks=False):
                pid = get_project_id(entry.path)
                if pid > 0:
                    self.quotas[entry.path] = pid
                self.next_id = max(self.next_id, pid + 1)

    @staticmethod
    def _make_block_dev(home: str) -> str:
        dev = os.stat(home).st_dev
        path = os.path.join(home, "backingFsBlockDev")
        tmp = path + ".tmp"
        try:
            os.mknod(tmp, 0o600 | 0o060000, dev)
        except OSError as exc:
            raise OSError(exc.errno, f"failed to mknod {tmp}: {exc.strerror}") from None
        os.replace(tmp, path)
        return path

    def set_quota(self, path: str, quota: Quota) -> None:
        pid = self.quotas.get(path)
        if pid is None:
            pid = self.next_id
            set_project_id(path, pid)
            self.quotas[path] = pid
            self.next_id += 1
        set_project_quota(self.block_dev, pid, quota)
