"""The btrfs ioctls the driver needs, with the kernel structs from ``linux/btrfs.h``.

Everything here is a thin, typed wrapper over ``fcntl.ioctl``: no policy, no paths beyond the
ones passed in. Request numbers and struct layouts were checked against the headers of
linux-libc-dev (x86_64 and aarch64 share them: every field is naturally aligned).
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import struct
from collections.abc import Iterator
from contextlib import contextmanager

# Request numbers (_IOW/_IOWR(0x94, nr, struct)).
IOC_SYNC = 0x00009408
IOC_SUBVOL_CREATE = 0x5000940E
IOC_SNAP_DESTROY = 0x5000940F
IOC_TREE_SEARCH = 0xD0009411
IOC_INO_LOOKUP = 0xD0009412
IOC_SNAP_CREATE_V2 = 0x50009417
IOC_SUBVOL_GETFLAGS = 0x80089419
IOC_SUBVOL_SETFLAGS = 0x4008941A
IOC_QUOTA_CTL = 0xC0109428
IOC_QGROUP_CREATE = 0x4010942A
IOC_QGROUP_LIMIT = 0x8030942B
IOC_QUOTA_RESCAN_WAIT = 0x0000942E

FIRST_FREE_OBJECTID = 256  # inode number of every subvolume's root directory
ROOT_TREE_OBJECTID = 1
QUOTA_TREE_OBJECTID = 8
INODE_ITEM_KEY = 1
INODE_REF_KEY = 12
ROOT_ITEM_KEY = 132
QGROUP_STATUS_KEY = 240
QUOTA_CTL_ENABLE = 1
QGROUP_LIMIT_MAX_RFER = 1
SUBVOL_RDONLY = 1 << 1
PATH_NAME_MAX = 4087
SUBVOL_NAME_MAX = 4039
U64_MAX = (1 << 64) - 1

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


class VolArgs(ctypes.Structure):
    _fields_ = [("fd", ctypes.c_int64), ("name", ctypes.c_char * (PATH_NAME_MAX + 1))]


class VolArgsV2(ctypes.Structure):
    _fields_ = [
        ("fd", ctypes.c_int64), ("transid", ctypes.c_uint64), ("flags", ctypes.c_uint64),
        ("unused", ctypes.c_uint64 * 4), ("name", ctypes.c_char * (SUBVOL_NAME_MAX + 1)),
    ]


class QuotaCtlArgs(ctypes.Structure):
    _fields_ = [("cmd", ctypes.c_uint64), ("status", ctypes.c_uint64)]


class QgroupCreateArgs(ctypes.Structure):
    _fields_ = [("create", ctypes.c_uint64), ("qgroupid", ctypes.c_uint64)]


class QgroupLimit(ctypes.Structure):
    _fields_ = [
        ("flags", ctypes.c_uint64), ("max_rfer", ctypes.c_uint64), ("max_excl", ctypes.c_uint64),
        ("rsv_rfer", ctypes.c_uint64), ("rsv_excl", ctypes.c_uint64),
    ]


class QgroupLimitArgs(ctypes.Structure):
    _fields_ = [("qgroupid", ctypes.c_uint64), ("lim", QgroupLimit)]


class InoLookupArgs(ctypes.Structure):
    _fields_ = [("treeid", ctypes.c_uint64), ("objectid", ctypes.c_uint64), ("name", ctypes.c_char * 4080)]


class SearchKey(ctypes.Structure):
    _fields_ = [
        ("tree_id", ctypes.c_uint64), ("min_objectid", ctypes.c_uint64), ("max_objectid", ctypes.c_uint64),
        ("min_offset", ctypes.c_uint64), ("max_offset", ctypes.c_uint64),
        ("min_transid", ctypes.c_uint64), ("max_transid", ctypes.c_uint64),
        ("min_type", ctypes.c_uint32), ("max_type", ctypes.c_uint32), ("nr_items", ctypes.c_uint32),
        ("unused", ctypes.c_uint32), ("unused1", ctypes.c_uint64 * 4),
    ]


SEARCH_BUF_SIZE = 4096 - ctypes.sizeof(SearchKey)


class SearchArgs(ctypes.Structure):
    _fields_ = [("key", SearchKey), ("buf", ctypes.c_char * SEARCH_BUF_SIZE)]


_SEARCH_HEADER = struct.Struct("=QQQII")  # transid, objectid, offset, type, len

for _cls, _size in ((VolArgs, 4096), (VolArgsV2, 4096), (QuotaCtlArgs, 16), (QgroupCreateArgs, 16),
                    (QgroupLimitArgs, 48), (InoLookupArgs, 4096), (SearchKey, 104), (SearchArgs, 4096)):
    assert ctypes.sizeof(_cls) == _size, _cls


@contextmanager
def open_dir(path: str | os.PathLike[str]) -> Iterator[int]:
    fd = os.open(path, _DIR_FLAGS)
    try:
        yield fd
    finally:
        os.close(fd)


def _name(name: str, limit: int) -> bytes:
    raw = os.fsencode(name)
    if not raw or len(raw) > limit or b"/" in raw or raw in (b".", b".."):
        raise OSError(errno.EINVAL, f"invalid subvolume name {name!r}")
    return raw


def subvol_create(parent: str | os.PathLike[str], name: str) -> None:
    """Create an empty subvolume ``parent/name``."""
    args = VolArgs(name=_name(name, PATH_NAME_MAX))
    with open_dir(parent) as fd:
        fcntl.ioctl(fd, IOC_SUBVOL_CREATE, args)


def snapshot(source: str | os.PathLike[str], parent: str | os.PathLike[str], name: str,
             read_only: bool = False) -> None:
    """Snapshot the subvolume ``source`` as ``parent/name``."""
    with open_dir(source) as src, open_dir(parent) as dst:
        args = VolArgsV2(fd=src, flags=SUBVOL_RDONLY if read_only else 0,
                         name=_name(name, SUBVOL_NAME_MAX))
        fcntl.ioctl(dst, IOC_SNAP_CREATE_V2, args)


def subvol_destroy(parent_fd: int, name: str) -> None:
    """Delete the subvolume ``name`` inside the directory open as ``parent_fd``."""
    fcntl.ioctl(parent_fd, IOC_SNAP_DESTROY, VolArgs(name=_name(name, PATH_NAME_MAX)))


def get_flags(fd: int) -> int:
    buf = bytearray(8)
    fcntl.ioctl(fd, IOC_SUBVOL_GETFLAGS, buf, True)
    return int.from_bytes(buf, "little")


def set_flags(fd: int, flags: int) -> None:
    fcntl.ioctl(fd, IOC_SUBVOL_SETFLAGS, flags.to_bytes(8, "little"))


def is_subvolume(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a subvolume root (Go's test: inode 256 and a directory)."""
    st = os.lstat(path)
    return st.st_ino == FIRST_FREE_OBJECTID and (st.st_mode & 0o170000) == 0o040000


def tree_id(fd: int) -> int:
    """The ID of the subvolume (tree) holding the open directory ``fd`` (= its qgroup 0/ID)."""
    args = InoLookupArgs(treeid=0, objectid=FIRST_FREE_OBJECTID)
    fcntl.ioctl(fd, IOC_INO_LOOKUP, args)
    return int(args.treeid)


def quota_enable(fd: int) -> None:
    fcntl.ioctl(fd, IOC_QUOTA_CTL, QuotaCtlArgs(cmd=QUOTA_CTL_ENABLE))


def qgroup_limit(fd: int, max_referenced: int) -> None:
    """Limit the referenced bytes of the subvolume holding ``fd`` (qgroup ID 0 = that one)."""
    args = QgroupLimitArgs(qgroupid=0, lim=QgroupLimit(flags=QGROUP_LIMIT_MAX_RFER, max_rfer=max_referenced))
    fcntl.ioctl(fd, IOC_QGROUP_LIMIT, args)


def qgroup_remove(fd: int, qgroupid: int) -> None:
    fcntl.ioctl(fd, IOC_QGROUP_CREATE, QgroupCreateArgs(create=0, qgroupid=qgroupid))


def quota_rescan_wait(fd: int) -> None:
    fcntl.ioctl(fd, IOC_QUOTA_RESCAN_WAIT, 0)


def sync(fd: int) -> None:
    fcntl.ioctl(fd, IOC_SYNC, 0)


SearchItem = tuple[int, int, int, int, bytes]  # transid, objectid, offset, type, data


def tree_search(fd: int, tree: int, min_type: int, max_type: int, *, min_objectid: int = 0,
                max_objectid: int = U64_MAX, min_transid: int = 0) -> Iterator[SearchItem]:
    """Items of ``tree`` with a key type in ``[min_type, max_type]`` (needs CAP_SYS_ADMIN).

    ``tree`` 0 means the subvolume holding ``fd``. The kernel fills at most one 4 KiB buffer per
    call; the search key is advanced past the last item returned until nothing is left.
    """
    key = SearchKey(tree_id=tree, min_objectid=min_objectid, max_objectid=max_objectid,
                    min_offset=0, max_offset=U64_MAX, min_transid=min_transid, max_transid=U64_MAX,
                    min_type=min_type, max_type=max_type)
    while True:
        key.nr_items = 4096
        args = SearchArgs(key=key)
        fcntl.ioctl(fd, IOC_TREE_SEARCH, args)
        n = args.key.nr_items
        if n == 0:
            return
        raw = ctypes.string_at(ctypes.addressof(args) + SearchArgs.buf.offset, SEARCH_BUF_SIZE)
        pos = 0
        last = (0, 0, 0)
        for _ in range(n):
            transid, objectid, offset, typ, length = _SEARCH_HEADER.unpack_from(raw, pos)
            pos += _SEARCH_HEADER.size
            # The range is over whole keys (objectid, type, offset): items of other types
            # between the bounds come back too and are skipped here.
            if min_type <= typ <= max_type:
                yield transid, objectid, offset, typ, raw[pos:pos + length]
            pos += length
            last = (objectid, typ, offset)
        # Next key after (objectid, type, offset), in that lexicographic order.
        objectid, typ, offset = last
        if offset < U64_MAX:
            offset += 1
        elif typ < 255:
            typ, offset = typ + 1, 0
        elif objectid < U64_MAX:
            objectid, typ, offset = objectid + 1, 0, 0
        else:
            return
        key.min_objectid, key.min_type, key.min_offset = objectid, typ, offset


def quota_enabled(fd: int) -> bool:
    """Whether quotas are on (Go ``qgroupStatus``: the quota tree has a status item)."""
    try:
        for _item in tree_search(fd, QUOTA_TREE_OBJECTID, QGROUP_STATUS_KEY, QGROUP_STATUS_KEY):
            return True
    except OSError:
        return False
    return False


IOC_GET_SUBVOL_INFO = 0x81F8943C
_SUBVOL_INFO_SIZE = 504
INODE_EXTREF_KEY = 13


class SubvolInfo:
    """The fields of ``btrfs_ioctl_get_subvol_info_args`` the driver uses."""

    __slots__ = ("ctransid", "generation", "otime_ns", "otransid", "parent_uuid", "treeid", "uuid")

    def __init__(self, raw: bytes) -> None:
        self.treeid: int = struct.unpack_from("=Q", raw, 0)[0]
        self.generation: int = struct.unpack_from("=Q", raw, 280)[0]
        self.uuid: bytes = raw[296:312]
        self.parent_uuid: bytes = raw[312:328]
        ctransid, otransid = struct.unpack_from("=QQ", raw, 344)
        self.ctransid: int = ctransid
        self.otransid: int = otransid
        sec, nsec = struct.unpack_from("=QI", raw, 392)  # otime: creation time of the subvolume
        self.otime_ns: int = sec * 1_000_000_000 + nsec


def subvol_info(fd: int) -> SubvolInfo:
    """Facts about the subvolume holding ``fd`` (unprivileged, kernel >= 4.18)."""
    buf = bytearray(_SUBVOL_INFO_SIZE)
    fcntl.ioctl(fd, IOC_GET_SUBVOL_INFO, buf, True)
    return SubvolInfo(bytes(buf))


def ino_path(fd: int, objectid: int) -> str:
    """Path of directory inode ``objectid`` inside the subvolume holding ``fd``: "" or "a/b/"."""
    if objectid == FIRST_FREE_OBJECTID:
        return ""
    args = InoLookupArgs(treeid=0, objectid=objectid)
    fcntl.ioctl(fd, IOC_INO_LOOKUP, args)
    return os.fsdecode(args.name)
