"""Whether we run rootless, and for whom (Go ``pkg/unshare`` ``IsRootless``/``GetRootlessUID``).

The one place that decides it: the per-user storage defaults (config), auto user namespaces
(userns), the ``--unshare`` default (CLI) and the overlay driver all ask here, so they cannot
disagree. Inside the namespace ``--unshare`` sets up we are UID 0 but still rootless: the
parent says so through ``_CONTAINERS_USERNS_CONFIGURED`` and names the real user in
``_CONTAINERS_ROOTLESS_UID``. Any other user namespace (``unshare -r``, a rootless container)
shows as a partial /proc/self/uid_map or a missing CAP_SYS_ADMIN.

Not cached, unlike Go's: tests change the environment, and the reads are cheap.
"""

from __future__ import annotations

import contextlib
import os

USERNS_ENV = "_CONTAINERS_USERNS_CONFIGURED"
ROOTLESS_UID_ENV = "_CONTAINERS_ROOTLESS_UID"
ROOTLESS_GID_ENV = "_CONTAINERS_ROOTLESS_GID"

_CAP_SYS_ADMIN = 21
# The kernel refuses a map line starting at (u32)-1, so a map covering that ID maps all of
# them: the initial user namespace (Go ``hasFullUsersMappings``).
_FULL_MAP_MARK = "4294967295"


def rootless_uid() -> int:
    """The user we act for: the real user even as root of the ``--unshare`` namespace."""
    with contextlib.suppress(ValueError):
        return int(os.environ.get(ROOTLESS_UID_ENV, ""))
    return os.geteuid()


def in_configured_namespace() -> bool:
    """Whether a parent (``--unshare``/``unshare``, podman) set up our user namespace."""
    return bool(os.environ.get(USERNS_ENV))


def needs_reexec() -> bool:
    """Whether ``--unshare`` means re-running: a non-root user, not yet inside a namespace.

    As root it does nothing: root can already own files as anyone. (Here rather than in
    ``cs_core.userns.unshare`` so the CLI can ask without importing ctypes and the ID-map code.)
    """
    return os.geteuid() != 0 and not in_configured_namespace()


def is_rootless() -> bool:
    """Go ``unshare.IsRootless``: not root, or root only of a user namespace."""
    if rootless_uid() != 0 or in_configured_namespace():
        return True
    if not _has_cap_sys_admin():
        return True
    return not has_full_mappings()


def uses_per_user_storage() -> bool:
    """Whether the rootless storage.conf and paths apply (Go ``DefaultStoreOptions(rootless,
    uid)`` takes them only for ``rootless && uid != 0``: root of a user namespace nobody
    configured for a real user keeps the system's)."""
    return is_rootless() and rootless_uid() != 0


def _has_cap_sys_admin() -> bool:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> _CAP_SYS_ADMIN & 1)
    except (OSError, ValueError, IndexError):
        pass
    return True  # Go: unreadable capabilities do not make us rootless


def has_full_mappings() -> bool:
    try:
        with open("/proc/self/uid_map") as fh:
            return _FULL_MAP_MARK in fh.read()
    except OSError:
        return True  # Go: an unreadable map does not make us rootless
