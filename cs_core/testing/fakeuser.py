"""An unprivileged user with subordinate IDs that exists only inside a private mount namespace.

Rootless tests need a user with /etc/subuid and /etc/subgid ranges, which the host must not
gain. Each command runs under ``unshare --mount`` with copies of /etc/passwd, /etc/group,
/etc/subuid and /etc/subgid bind-mounted over the real ones, then drops to the user with
``setpriv``. newuidmap and newgidmap, being setuid root, read those same files there, so the
user's ranges really get installed. Needs root (to build the namespace) and the ``uidmap``
and ``util-linux`` packages.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import attrs

from cs_core.testing.privileged import require_privileged, requires_command

UID = 23456
NAME = "cstest"
SUB_START, SUB_COUNT = 300000, 65536


@attrs.define
class FakeUser:
    """Runs commands as ``uid`` in a private mount namespace where it has subordinate IDs."""

    uid: int
    name: str
    home: Path
    script: Path

    def run(self, *argv: str, env: Mapping[str, str] | None = None,
            input: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` as the user; ``env`` adds to the user's (HOME, USER only)."""
        extra = [f"{k}={v}" for k, v in (env or {}).items()]
        return subprocess.run(["unshare", "--mount", "--propagation", "private", "sh",
                               str(self.script), *extra, *argv], capture_output=True, text=True,
                              timeout=120, input=input)

    def cli(self, *args: str, env: Mapping[str, str] | None = None
            ) -> subprocess.CompletedProcess[str]:
        """Our CLI, run by the user."""
        return self.run(sys.executable, "-m", "cs_core", *args, env=env)


def _unblock(paths: list[str]) -> list[str]:
    """Shell lines that make ``paths`` reachable for any user inside the namespace: each
    ancestor directory others cannot search (pyenv under /root, say) is covered by a 0755 tmpfs
    holding bind mounts of just the entries needed."""
    needed: dict[str, set[str]] = {}
    for path in paths:
        parts = Path(path).parts
        # Every blocked ancestor, not just the first: a clone in /root (0700) keeps tox's
        # venv under .tox, which tox also makes 0700.
        for i in range(1, len(parts)):
            parent = os.path.join(*parts[:i])
            if not os.stat(parent).st_mode & stat.S_IXOTH:
                needed.setdefault(parent, set()).add(parts[i])
    blocked = sorted(needed.items())  # outer directories first: inner ones live inside them
    lines = []
    # Stash every entry first, from the real tree, before any tmpfs hides part of it.
    for n, (directory, children) in enumerate(blocked):
        for child in sorted(children):
            stash = f"$STASH/{n}-{child}"
            lines += [f"mkdir -p {stash}", f"mount --bind {directory}/{child} {stash}"]
    for n, (directory, children) in enumerate(blocked):
        lines.append(f"mount -t tmpfs -o mode=755 tmpfs {directory}")
        for child in sorted(children):
            lines += [f"mkdir -p {directory}/{child}", f"mount --bind $STASH/{n}-{child} {directory}/{child}"]
    return lines


def _package_dirs() -> list[str]:
    """cs_core's package directory and every installed driver plugin's: with editable installs
    they live in the clone, which may sit in a directory others cannot search."""
    import importlib.metadata
    import importlib.util

    import cs_core

    dirs = [os.path.dirname(os.path.realpath(cs_core.__file__))]
    for entry in importlib.metadata.entry_points(group="cs_core"):
        spec = importlib.util.find_spec(entry.module.split(".")[0])
        if spec is not None and spec.origin:
            dirs.append(os.path.dirname(os.path.realpath(spec.origin)))
    return dirs


@contextlib.contextmanager
def fake_user(*, uid: int = UID, name: str = NAME, sub_start: int = SUB_START,
              sub_count: int = SUB_COUNT, run_user_dir: bool = False) -> Iterator[FakeUser]:
    """The user, with home directory a fresh temporary directory (removed afterwards).

    ``run_user_dir``: give it the /run/user/<uid> (0700, its own) that logind makes at login,
    on a tmpfs over /run/user in the namespace.

    Skips (fails in CI) without root or the tools; the environment is otherwise emptied but
    for HOME, USER and PATH, as a login would, so nothing of the caller's leaks in.
    """
    require_privileged()
    for tool in ("unshare", "setpriv", "newuidmap", "newgidmap"):
        requires_command(tool)
    try:
        pwd.getpwuid(uid)
    except KeyError:
        pass
    else:
        raise AssertionError(f"UID {uid} is a real user; the fake user needs a free one")
    home = Path(tempfile.mkdtemp(prefix="cs-fakeuser-"))
    try:
        etc = home / "etc"
        etc.mkdir()
        for file in ("passwd", "group"):
            shutil.copy(f"/etc/{file}", etc / file)
        with open(etc / "passwd", "a") as f:
            f.write(f"{name}:x:{uid}:{uid}::{home}:/bin/sh\n")
        with open(etc / "group", "a") as f:
            f.write(f"{name}:x:{uid}:\n")
        for file in ("subuid", "subgid"):
            (etc / file).write_text(f"{name}:{sub_start}:{sub_count}\n")
        stash = home / "stash"
        stash.mkdir()

        lines = ["set -e", f"STASH={stash}"]
        lines += [f"mount --bind {etc / n} /etc/{n}" for n in ("passwd", "group", "subuid", "subgid")]
        if run_user_dir:
            lines += ["mount -t tmpfs -o mode=755 tmpfs /run/user",
                      f"mkdir -m 700 /run/user/{uid}", f"chown {uid}:{uid} /run/user/{uid}"]
        lines += _unblock([os.path.realpath(sys.executable), sys.prefix, *_package_dirs()])
        path = os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        lines.append(f"exec setpriv --reuid={uid} --regid={uid} --clear-groups "
                     f'env -i HOME={home} USER={name} PATH={path} "$@"')
        script = home / "run.sh"
        script.write_text("\n".join(lines) + "\n")
        os.chown(home, uid, uid)
        os.chmod(home, 0o755)
        yield FakeUser(uid, name, home, script)
    finally:
        shutil.rmtree(home, ignore_errors=True)

