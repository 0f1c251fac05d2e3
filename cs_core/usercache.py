"""Per-user cache files (``$XDG_CACHE_HOME/cs_core``): read only when nobody else could have
written them.

A cache decides what cs_core does (which storage.conf tables apply, which plugin module is
imported), so a file is trusted only if it is a regular file, opened without following a
symlink, owned by the effective user, writable by neither group nor others, and small; any
other file reads as absent and the caller recomputes (docs/security.md).
"""

from __future__ import annotations

import json
import os
import stat
from typing import Any

#: Bigger than any cache we write: a bigger file is not ours.
MAX_BYTES = 1 << 20


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
