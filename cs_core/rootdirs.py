"""Refuse a graph root or run root that someone else could tamper with.

Everything the store writes lives beneath these two directories, and cs_core often runs as
root. If another user owns one of them, can write into it, or controls a symlink on the way to
it, they can plant symlinks where our records, locks and mount state go, swap directories under
us, or forge ``mountpoints.json``. Go HEAD checks only the rootless run directory it picks
itself (owned by us, ``perm & 0o722 == 0o700``); we check the roots we are given, too.

What is accepted: the directory owned by our effective UID and writable by nobody else (any
of 0700/0750/0755; root's ``/var/lib/containers/storage``, ``/run/containers/storage``, a
rootless user's ``$XDG_RUNTIME_DIR``, ``~/.local/share``, a fresh temporary directory). On
the way to it every symlink must be owned by root or us (or, inside a user namespace, by the
overflow UID it shows for IDs it does not map, such as the host's root), and no directory
may be writable by others unless it has the sticky bit (``/tmp``), where no one can rename
or delete our entries.
"""

from __future__ import annotations

import os
import stat

from cs_core import atomic
from cs_core.errors import ConfigError, ExactMessage
from cs_core.userns import rootless

_MAX_LINKS = 40  # the kernel's MAXSYMLINKS


class UnsafeRoot(ExactMessage, ConfigError):
    """A graph or run root another user could tamper with (one line saying what to do)."""


def _trusted_link_owners() -> set[int]:
    owners = {0, os.geteuid()}
    if not rootless.has_full_mappings():
        # In a user namespace IDs it does not map (root's, on the host) all show as this one;
        # outside, it is the real user "nobody", who is as untrusted as anyone else.
        owners.add(_overflow_uid())
    return owners


def _overflow_uid() -> int:
    try:
        with open("/proc/sys/kernel/overflowuid") as fh:
            return int(fh.read())
    except (OSError, ValueError):
        return 65534


def make_root(path: str, what: str) -> None:
    """Create ``path`` if needed (0700) and check it with :func:`check_root`.

    What exists of it is checked first, so nothing is created through someone else's symlink.
    """
    path = os.path.abspath(path)
    existing = path
    while not os.path.lexists(existing):
        existing = os.path.dirname(existing)
    if existing != path:
        _, st = _resolve(existing, path, what)
        _check_ancestor(existing, st, path, what)
        atomic.makedirs(path)
    check_root(path, what)


def check_root(path: str, what: str) -> None:
    """Raise :class:`UnsafeRoot` unless only we can change what ``path`` (which exists) holds.

    ``what`` names the directory in the message ("graph root", "run root").
    """
    euid = os.geteuid()
    path = os.path.abspath(path)
    resolved, st = _resolve(path, path, what)
    if st.st_uid != euid:
        raise UnsafeRoot(
            f"{what} {path} is owned by UID {st.st_uid}, not by the current user (UID {euid}): "
            f"use a directory of your own, or chown {euid} {resolved}")
    if st.st_mode & 0o022:
        raise UnsafeRoot(
            f"{what} {path} is writable by group or others (mode {stat.S_IMODE(st.st_mode):04o}): "
            f"run chmod go-w {resolved}, or use another directory")


def _resolve(path: str, root: str, what: str) -> tuple[str, os.stat_result]:
    """Resolve ``path`` (``root`` or an ancestor) one component at a time, checking each
    symlink and directory passed.

    Returns the resolved path and its ``lstat``. Done by hand (not ``realpath``) because the
    owner of every symlink on the way matters, not only where the walk ends.
    """
    trusted = _trusted_link_owners()
    pending = path.split("/")[::-1]
    resolved = "/"
    st = os.lstat(resolved)
    links = 0
    while pending:
        name = pending.pop()
        if name in ("", "."):
            continue
        if name == "..":
            resolved = os.path.dirname(resolved)
            st = os.lstat(resolved)
            continue
        _check_ancestor(resolved, st, root, what)
        candidate = os.path.join(resolved, name)
        st = os.lstat(candidate)
        if stat.S_ISLNK(st.st_mode):
            if st.st_uid not in trusted:
                raise UnsafeRoot(
                    f"{what} {root} goes through symlink {candidate}, owned by UID {st.st_uid}: "
                    "use a path without other users' symlinks")
            links += 1
            if links > _MAX_LINKS:
                raise UnsafeRoot(f"{what} {root}: too many levels of symbolic links")
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = "/"
                st = os.lstat(resolved)
            pending.extend(target.split("/")[::-1])
            continue
        resolved = candidate
    if not stat.S_ISDIR(st.st_mode):
        raise UnsafeRoot(f"{what} {root}: {resolved} is not a directory")
    return resolved, st


def _check_ancestor(directory: str, st: os.stat_result, path: str, what: str) -> None:
    # Others may write here only if the sticky bit stops them renaming our entries away.
    if st.st_mode & 0o002 and not st.st_mode & stat.S_ISVTX:
        raise UnsafeRoot(
            f"{what} {path} is inside {directory}, which anyone may write to "
            f"(mode {stat.S_IMODE(st.st_mode):04o}): use a directory only you can change")
