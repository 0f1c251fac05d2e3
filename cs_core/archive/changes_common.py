"""What the change finders and the exporter share: xattr reads, the one-line error for a tree
too deep to walk, Go's time comparison, and the overlay whiteout test.
"""

from __future__ import annotations

import errno
import functools
import os
import stat
from collections.abc import Callable
from typing import Any, TypeVar

from cs_core.errors import UnsafeArchive

_F = TypeVar("_F", bound=Callable[..., Any])


def shallow(fn: _F) -> _F:
    """Turn a RecursionError (a tree nested thousands deep) into a clean one-line error."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except RecursionError:
            raise UnsafeArchive("directory tree too deep to compare or export") from None

    return wrapper  # type: ignore[return-value]


XATTR_ERRORS = (errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENODATA)


def getxattr(path: str | int, key: str, follow: bool = False) -> bytes | None:
    """``follow`` only for a /proc/self/fd path (or a readable fd): that magic link leads to the
    very inode its fd holds (a symlink's own xattrs for an ``O_PATH`` fd of one), never further."""
    try:
        return os.getxattr(path, key, follow_symlinks=follow)
    except OSError as exc:
        if exc.errno in XATTR_ERRORS:
            return None
        raise


def read_xattrs(path: str | int, wanted: tuple[str, ...], follow: bool = False) -> dict[str, bytes]:
    """The ``user.*`` xattrs and those named in ``wanted`` that ``path`` has.

    One ``listxattr`` says which exist, so the usual file with none costs one call, not one
    per name asked for.
    """
    try:
        keys = os.listxattr(path, follow_symlinks=follow)
    except OSError as exc:
        if exc.errno in XATTR_ERRORS:
            return {}
        raise
    out: dict[str, bytes] = {}
    for key in keys:
        if key.startswith("user.") or key in wanted:
            value = getxattr(path, key, follow)
            if value is not None:
                out[key] = value
    return out


CAP = "security.capability"


def compared_xattrs(path: str) -> dict[str, bytes]:
    """The xattrs by which a file counts as changed: ``user.*`` and file capabilities."""
    return read_xattrs(path, (CAP,))


def same_time(a: int, b: int) -> bool:
    """Go's ``sameFsTime``: equal, or the same second when either side has no nanoseconds."""
    return a == b or (
        a // 1_000_000_000 == b // 1_000_000_000 and (a % 1_000_000_000 == 0 or b % 1_000_000_000 == 0)
    )


def is_whiteout(st: os.stat_result) -> bool:
    """Overlay's whiteout: a character device 0/0."""
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
