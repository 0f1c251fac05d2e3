"""Automatic user namespaces (Go ``userns.go``): pick unused host ID ranges for a container.

The host IDs on offer are the subordinate ranges of one user (``root-auto-userns-user``,
default ``containers``; rootless: the caller, renumbered as seen inside its namespace). IDs
any container's maps already use, plus the caller's additional mappings, are taken out; the
first free ``size`` IDs are paired with container IDs 0..size-1. Without a requested size the
image decides: the highest ID its layers' files use or its /etc/passwd and /etc/group name.

The store's side (cs_core.store.auto_userns) measures the image and holds ``userns.lock``
from the choice until the container record is saved, so two creates never pick the same
free range.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import stat
from collections.abc import Iterator, Sequence

from cs_core import lazylog, recordclass
from cs_core.errors import InvalidMappings
from cs_core.model import IDMap
from cs_core.userns.idmap import maps_from_subid
from cs_core.userns.idset import IDSet
from cs_core.userns.rootless import rootless_uid

log = lazylog.getLogger(__name__)

ROOT_AUTO_USERNS_USER = "containers"
# "nobody"/"nogroup" would make nearly every image need 65536 IDs; Go skips them by name
# and by number.
NOBODY_ID = 65534
NOBODY_NAMES = frozenset({"nobody", "nogroup"})


@recordclass.define
class AutoUserNsOptions:
    """Go ``types.AutoUserNsOptions``."""

    size: int = 0  # exactly this many IDs; 0: decide from the image
    initial_size: int = 0  # at least this many IDs when deciding
    passwd_file: str = ""  # read instead of the image's /etc/passwd (a host path)
    group_file: str = ""  # read instead of the image's /etc/group (a host path)
    additional_uid_mappings: list[IDMap] = recordclass.field(factory=list)
    additional_gid_mappings: list[IDMap] = recordclass.field(factory=list)


# -- the IDs on offer ----------------------------------------------------------------------

def _rootless_user() -> str:
    if user := os.environ.get("USER"):
        return user
    try:
        # As root of the --unshare namespace, the real user is in the environment.
        return pwd.getpwuid(rootless_uid()).pw_name
    except KeyError:
        return ""


def available_ids(user: str, *, rootless: bool) -> tuple[IDSet, IDSet]:
    """Host UIDs and GIDs auto user namespaces may use (empty when the user has none)."""
    if rootless:
        user = _rootless_user()  # only the caller's own ranges are usable
    elif not user:
        user = ROOT_AUTO_USERNS_USER
    try:
        uids = IDSet.host_ids(maps_from_subid(user, "uid"))
        gids = IDSet.host_ids(maps_from_subid(user, "gid"))
    except InvalidMappings as exc:
        # Go logs this and goes on with no IDs, which then fails as "not enough unused IDs".
        log.error('Cannot find mappings for user "%s": %s', user, exc.detail)
        return IDSet(), IDSet()
    if rootless:
        # Inside the rootless namespace the subordinate IDs appear as 1..N (0 is the user).
        return IDSet([(1, uids.size + 1)]), IDSet([(1, gids.size + 1)])
    return uids, gids


# -- how many IDs an image needs -----------------------------------------------------------

def _number(text: str) -> int:
    # libcontainer's parser turns an unparsable number into 0; so do we.
    try:
        return int(text, 10)
    except ValueError:
        return 0


def _open_regular(root: str, rel: str, override: str) -> int | None:
    """A descriptor of the override path (a host file), or of ``rel`` resolved *inside*
    ``root``: an image's /etc/passwd may be a symlink, and it must not lead to the host's
    files. Anything but a regular file (a FIFO would block us forever) counts as missing."""
    try:
        if override:
            fd = os.open(override, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        else:
            from cs_core.archive.saferoot import openat2  # ctypes: only for auto userns

            root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                fd = openat2(root_fd, rel, os.O_RDONLY | os.O_NONBLOCK)
            finally:
                os.close(root_fd)
    except OSError:
        return None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    return fd


@contextlib.contextmanager
def _user_file(root: str, rel: str, override: str) -> Iterator[Iterator[list[str]]]:
    """The colon-separated fields of each non-blank line (none if the file is missing)."""
    fd = _open_regular(root, rel, override)
    if fd is None:
        yield iter(())
        return
    with open(fd, encoding="utf-8", errors="replace") as fh:
        yield (line.strip().split(":") for line in fh if line.strip())


def size_from_user_files(root: str, passwd_file: str = "", group_file: str = "") -> int:
    """One more than the highest UID/GID /etc/passwd and /etc/group name (0 if none)."""
    size = 0
    with _user_file(root, "etc/passwd", passwd_file) as entries:
        for fields in entries:  # name:password:uid:gid:...
            if fields[0] in NOBODY_NAMES:
                continue
            for text in fields[2:4]:
                if (n := _number(text)) != NOBODY_ID:
                    size = max(size, n + 1)
    with _user_file(root, "etc/group", group_file) as entries:
        for fields in entries:  # name:password:gid:members
            if fields[0] in NOBODY_NAMES or len(fields) < 3:
                continue
            if (n := _number(fields[2])) != NOBODY_ID:
                size = max(size, n + 1)
    return size


# -- the allocation ------------------------------------------------------------------------

def allocate(size: int, available_uids: IDSet, available_gids: IDSet,
             used_uids: Sequence[IDMap], used_gids: Sequence[IDMap],
             additional_uids: Sequence[IDMap] = (), additional_gids: Sequence[IDMap] = (),
             ) -> tuple[list[IDMap], list[IDMap]]:
    """Maps for container IDs 0..size-1 on the lowest free host IDs (Go
    ``getAutoUserNSIDMappings``). Additional mappings keep their container IDs and their host
    IDs are not handed out again."""
    wanted = IDSet([(0, size)])
    maps: list[list[IDMap]] = []
    for available, used, additional in ((available_uids, used_uids, additional_uids),
                                        (available_gids, used_gids, additional_gids)):
        taken = IDSet.host_ids([*used, *additional])
        container_ids = wanted.subtract(IDSet.container_ids(additional))
        hosts = available.subtract(taken).find_available(container_ids.size)
        maps.append([*hosts.zip(container_ids), *additional])
    return maps[0], maps[1]
