"""Running this process again inside a user namespace (Go ``pkg/unshare``
``MaybeReexecUsingUserNamespace``), for ``--unshare/-U`` and the ``unshare`` command.

An unprivileged user cannot give files owners other than itself. In a user namespace where it
is root, with its own UID as 0 and its /etc/subuid and /etc/subgid ranges mapped after that,
it can: a layer's uid 1000 lands on disk as the host ID the namespace maps 1000 to. The ranges
are installed by the setuid helpers ``newuidmap``/``newgidmap`` (package ``uidmap``), which
check them against /etc/subuid and /etc/subgid; without them only the user's own ID is mapped.

The child learns who it runs for from ``_CONTAINERS_ROOTLESS_UID``/``_GID`` (the per-user
storage.conf and paths stay the user's) and that it is already inside from
``_CONTAINERS_USERNS_CONFIGURED``, as Go's do.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import pwd
import shutil
import signal
import subprocess
import sys
from collections.abc import Sequence

from cs_core.errors import StorageError
from cs_core.model import IDMap
from cs_core.userns.idmap import SubIDKind, read_subid_ranges, subid_file
from cs_core.userns.rootless import ROOTLESS_GID_ENV, ROOTLESS_UID_ENV, USERNS_ENV
from cs_core.userns.rootless import needs_reexec as needs_reexec  # re-exported: callers know it here

log = logging.getLogger(__name__)

_CLONE_NEWNS = 0x00020000
_CLONE_NEWUSER = 0x10000000
_PR_SET_PDEATHSIG = 1
# CDLL(None): the C library the interpreter already has loaded; find_library would run ldconfig
# (a subprocess) in every process that imports this module.
_libc = ctypes.CDLL(None, use_errno=True)


class UserNamespaceError(StorageError):
    message = "setting up a user namespace"

    def __str__(self) -> str:
        return f"{self.message}: {self.detail}" if self.detail else self.message


def namespace_maps(uid: int, gid: int, user: str) -> tuple[list[IDMap], list[IDMap]]:
    """Our own ID as 0, then the user's subordinate ranges one after another (as Go)."""

    def build(own: int, kind: SubIDKind) -> list[IDMap]:
        maps, next_id = [IDMap(0, own, 1)], 1
        ranges = read_subid_ranges(user, kind)
        if not ranges:
            log.warning('Found no %s ranges set aside for user "%s" in %s.', kind.upper(), user,
                        subid_file(kind))
        for start, count in ranges:
            maps.append(IDMap(next_id, start, count))
            next_id += count
        return maps

    return build(uid, "uid"), build(gid, "gid")


def reexec_self() -> int:
    """Run this very command again inside a new user (and mount) namespace; its exit status."""
    uid, gid = os.getuid(), os.getgid()
    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:
        user = str(uid)
    uid_maps, gid_maps = namespace_maps(uid, gid, user)
    env = {**os.environ, USERNS_ENV: "done", ROOTLESS_UID_ENV: str(uid), ROOTLESS_GID_ENV: str(gid)}
    # orig_argv is the interpreter's own command line: works for the console script, -m and
    # the zipapp alike.
    argv = [sys.executable, *sys.orig_argv[1:]]
    return run_in_namespace(argv, env, uid_maps, gid_maps)


def run_in_namespace(argv: Sequence[str], env: dict[str, str], uid_maps: Sequence[IDMap],
                     gid_maps: Sequence[IDMap]) -> int:
    """Fork a child that unshares, wait until we have written its ID maps, let it exec
    ``argv``; forward SIGINT/SIGTERM/SIGHUP to it and return its exit status (128+signal)."""
    sys.stdout.flush()
    sys.stderr.flush()
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child, which execs or exits
        os.close(ready_r)
        os.close(go_w)
        _child(argv, env, ready_w, go_r)
    os.close(ready_w)
    os.close(go_r)
    try:
        with os.fdopen(ready_r, "rb") as ready:
            status = ready.read()
        if status != b"ok":
            os.waitpid(pid, 0)
            raise UserNamespaceError(status.decode(errors="replace") or "the child exited")
        try:
            _write_maps(pid, uid_maps, gid_maps)
        except BaseException:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise
        os.write(go_w, b"g")
    finally:
        os.close(go_w)
    forward = {sig: signal.signal(sig, lambda s, _f: os.kill(pid, s))
               for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        _, wait_status = os.waitpid(pid, 0)
    finally:
        for sig, old in forward.items():
            signal.signal(sig, old)
    code = os.waitstatus_to_exitcode(wait_status)
    return 128 - code if code < 0 else code


def _child(argv: Sequence[str], env: dict[str, str], ready_w: int, go_r: int) -> None:  # pragma: no cover
    try:
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # never outlive the parent
        if _libc.unshare(_CLONE_NEWUSER | _CLONE_NEWNS) != 0:
            err = ctypes.get_errno()
            os.write(ready_w, f"unshare: {os.strerror(err).lower()}".encode())
            os._exit(125)
        os.write(ready_w, b"ok")
        os.close(ready_w)
        if os.read(go_r, 1) != b"g":
            os._exit(125)  # the parent could not set up the maps; it reported why
        with contextlib.suppress(OSError):
            os.setgroups([])  # denied when only a single GID could be mapped
        os.setresgid(0, 0, 0)
        os.setresuid(0, 0, 0)
        os.execve(argv[0], list(argv), env)
    except BaseException as exc:
        with contextlib.suppress(Exception):
            sys.stderr.write(f"{exc}\n")
            sys.stderr.flush()
    os._exit(127)


def _map_args(maps: Sequence[IDMap]) -> list[str]:
    return [str(v) for m in maps for v in (m.container_id, m.host_id, m.size)]


def _write_maps(pid: int, uid_maps: Sequence[IDMap], gid_maps: Sequence[IDMap]) -> None:
    """Install the maps with newgidmap/newuidmap; if they fail, fall back (as Go) to mapping
    just our own IDs, which an unprivileged process may write itself."""
    proc = f"/proc/{pid}"
    if not _helper("newgidmap", pid, gid_maps):
        log.warning("Falling back to single mapping")
        with open(f"{proc}/setgroups", "w") as f:
            f.write("deny")  # the kernel's condition for an unprivileged gid_map
        with open(f"{proc}/gid_map", "w") as f:
            f.write(f"0 {os.getegid()} 1\n")
    if not _helper("newuidmap", pid, uid_maps):
        log.warning("Falling back to single mapping")
        with open(f"{proc}/uid_map", "w") as f:
            f.write(f"0 {os.geteuid()} 1\n")


def _helper(name: str, pid: int, maps: Sequence[IDMap]) -> bool:
    if len(maps) < 2:
        return False  # nothing beyond our own ID: no helper needed
    path = shutil.which(name)
    if path is None:
        log.warning("%s not found (install the uidmap package)", name)
        return False
    run = subprocess.run([path, str(pid), *_map_args(maps)], capture_output=True, text=True)
    if run.returncode != 0:
        log.warning("running %s: %s", name, (run.stderr or run.stdout).strip())
        return False
    return True
