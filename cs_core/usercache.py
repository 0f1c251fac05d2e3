"""Per-user cache files (``$XDG_CACHE_HOME/cs_core``): read only when nobody else could have
written them.

A cache decides what cs_core does (which storage.conf tables apply, which plugin module is
imported), so a file is trusted only if it is a regular file, opened without following a
symlink, owned by the effective user, writable by neither group nor others, and small; any
other file reads as absent and the caller recomputes (docs/security.md). Writes are best
effort and never fsynced: a lost or torn cache only costs recomputing it, and a command's
flushes are counted (tests/test_flush_count.py).
"""

from __future__ import annotations

import json
import os
import stat
from typing import Any

# Eager, as json is: a process that drops privileges after importing this (a test switching to
# nobody under a 0700 home) must still be able to write its caches.
from cs_core import atomic

#: Bigger than any cache we write: a bigger file is not ours.
MAX_BYTES = 1 << 20


def cache_path(name: str, home: str | None) -> str | None:
    """``$XDG_CACHE_HOME/cs_core/<name>``, or under ``<home>/.cache``; None without either."""
    base = os.environ.get("XDG_CACHE_HOME") or (os.path.join(home, ".cache") if home else None)
    return os.path.join(base, "cs_core", name) if base else None


def stat_stamp(st: os.stat_result) -> list[int]:
    """What identifies a file's version for a cache key. ctime too: an edit that restores the
    mtime (touch -r, rsync -t) still moves it."""
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def read_trusted_json(path: str | None) -> Any:
    """The JSON in ``path`` if the file can be trusted (see above) and parses; else None."""
    if path is None:
        return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if (not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid()
                or st.st_mode & 0o022 or st.st_size > MAX_BYTES):
            return None
        raw = os.read(fd, MAX_BYTES + 1)
    except OSError:
        return None
    finally:
        os.close(fd)
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):  # ValueError covers bad UTF-8 too
        return None


def write_json(path: str | None, value: Any, *, allow_nan: bool = True) -> bool:
    """Replace ``path`` with ``value`` as JSON (atomically, mode 0600, its directory 0700);
    False if it could not be written (a read-only home, a value JSON cannot hold)."""
    if path is None:
        return False
    try:
        raw = json.dumps(value, allow_nan=allow_nan).encode()
        atomic.makedirs(os.path.dirname(path), 0o700)
        atomic.write_file(path, raw, 0o600, durable=False)
    except (OSError, TypeError, ValueError):
        return False
    return True
