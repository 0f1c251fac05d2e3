"""Whether a path is a mount point, decided by mount IDs rather than by path strings.

``/proc/self/mountinfo`` lists mounts that are no longer reachable: a mount at ``a/b`` stays
listed after a bind mount over ``a`` hides it, so matching its path strings says ``a/b`` is
mounted when what ``a/b`` now shows is a plain directory (and ``make_private`` then skipped
its own bind mount and failed). Here the path is opened and the kernel asked which mount the
fd is on (``mnt_id`` in ``/proc/self/fdinfo``, the ID ``statx(STATX_MNT_ID)`` gives): a path is
a mount point when that mount differs from its parent directory's, and its filesystem type is
read from the mountinfo line with that mount ID.
"""

from __future__ import annotations

import contextlib
import os
import stat

_PATH_FLAGS = os.O_PATH | os.O_CLOEXEC


def mount_id(fd: int) -> int:
    """The ID of the mount ``fd`` is on (field 1 of ``/proc/self/mountinfo``)."""
    with open(f"/proc/self/fdinfo/{fd}", "rb") as fh:
        for line in fh:
            if line.startswith(b"mnt_id:"):
                return int(line.split()[1])
    raise OSError(f"no mnt_id in /proc/self/fdinfo/{fd}")


def fstype(mnt_id: int) -> str | None:
    """The filesystem type of mount ``mnt_id``, or None if it is not in our namespace."""
    key = str(mnt_id).encode()
    with open("/proc/self/mountinfo", "rb") as fh:
        for line in fh:
            fields = line.split(b" ")
            if fields[0] == key:
                return fields[fields.index(b"-") + 1].decode()
    return None


def mount_of(path: str | os.PathLike[str]) -> int | None:
    """The ID of the mount whose root ``path`` is (symlinks followed), or None if it is not one."""
    try:
        fd = os.open(path, _PATH_FLAGS)
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            parent = os.open("..", _PATH_FLAGS | os.O_DIRECTORY, dir_fd=fd)
        else:
            parent = os.open(os.path.dirname(os.path.realpath(path)), _PATH_FLAGS | os.O_DIRECTORY)
        try:
            here, up = mount_id(fd), mount_id(parent)
            if here != up:
                return here
            pst = os.fstat(parent)
            # ".." of "/" is "/" itself: the root of our namespace is always a mount.
            return here if (pst.st_dev, pst.st_ino) == (st.st_dev, st.st_ino) else None
        finally:
            os.close(parent)
    finally:
        os.close(fd)


def is_mountpoint(path: str | os.PathLike[str], fstypes: tuple[str, ...] = ()) -> bool:
    """Whether something is mounted at ``path`` right now (of one of ``fstypes``, if given;
    ``"fuse."`` matches every ``fuse.*`` type)."""
    mnt = None
    with contextlib.suppress(PermissionError):
        mnt = mount_of(path)
    if mnt is None:
        return False
    if not fstypes:
        return True
    kind = fstype(mnt)
    return kind is not None and (kind in fstypes or any(
        kind.startswith(t) for t in fstypes if t.endswith(".")))
