"""--unshare/-U and the unshare command, run by an unprivileged user with /etc/subuid ranges.

The user, its ranges and its passwd entry exist only in a private mount namespace (bind mounts
over /etc/passwd, /etc/group, /etc/subuid, /etc/subgid), so the host is never changed; newuidmap
and newgidmap, being setuid root, read those same files there.
"""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from cs_core.testing import require_privileged, requires_command
from cs_core.testing.tars import layer_tar

UID = 23456
SUB_START, SUB_COUNT = 300000, 65536


@attrs.define
class User:
    """Runs commands as UID in a private mount namespace where it has subordinate IDs."""

    home: Path
    script: Path

    def run(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["unshare", "--mount", "--propagation", "private", "sh",
                               str(self.script), *argv], capture_output=True, text=True,
                              timeout=120)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run(sys.executable, "-m", "cs_core", *args)


def _unblock(paths: list[str]) -> list[str]:
    """Shell lines that make ``paths`` reachable for any user inside the namespace: each
    ancestor directory others cannot search (pyenv under /root, say) is covered by a 0755 tmpfs
    holding bind mounts of just the entries needed."""
    needed: dict[str, set[str]] = {}
    for path in paths:
        parts = Path(path).parts
        for i in range(1, len(parts)):
            parent = os.path.join(*parts[:i])
            if not os.stat(parent).st_mode & stat.S_IXOTH:
                needed.setdefault(parent, set()).add(parts[i])
                break
    lines = []
    for n, (blocked, children) in enumerate(sorted(needed.items())):
        for child in sorted(children):
            stash = f"$STASH/{n}-{child}"
            lines += [f"mkdir -p {stash}", f"mount --bind {blocked}/{child} {stash}"]
        lines.append(f"mount -t tmpfs -o mode=755 tmpfs {blocked}")
        for child in sorted(children):
            lines += [f"mkdir -p {blocked}/{child}", f"mount --bind $STASH/{n}-{child} {blocked}/{child}"]
    return lines


@pytest.fixture
def user() -> Iterator[User]:
    require_privileged()
    for tool in ("unshare", "setpriv", "newuidmap", "newgidmap"):
        requires_command(tool)
    with pytest.raises(KeyError):
        pwd.getpwuid(UID)  # the test user must not be a real one
    home = Path(tempfile.mkdtemp(prefix="cs-unshare-"))
    try:
        etc = home / "etc"
        etc.mkdir()
        for name in ("passwd", "group"):
            shutil.copy(f"/etc/{name}", etc / name)
        with open(etc / "passwd", "a") as f:
            f.write(f"cstest:x:{UID}:{UID}::{home}:/bin/sh\n")
        with open(etc / "group", "a") as f:
            f.write(f"cstest:x:{UID}:\n")
        for name in ("subuid", "subgid"):
            (etc / name).write_text(f"cstest:{SUB_START}:{SUB_COUNT}\n")
        stash = home / "stash"
        stash.mkdir()
        import cs_core

        lines = ["set -e", f"STASH={stash}"]
        lines += [f"mount --bind {etc / n} /etc/{n}" for n in ("passwd", "group", "subuid", "subgid")]
        lines += _unblock([os.path.realpath(sys.executable), sys.prefix,
                           os.path.dirname(os.path.dirname(cs_core.__file__))])
        lines.append(f'exec setpriv --reuid={UID} --regid={UID} --clear-groups env HOME={home} "$@"')
        script = home / "run.sh"
        script.write_text("\n".join(lines) + "\n")
        os.chown(home, UID, UID)
        os.chmod(home, 0o755)
        yield User(home, script)
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _layer_tar(path: Path) -> Path:
    path.write_bytes(layer_tar([("by-1000", b"x"), ("by-root", b"x")],
                               owners={"by-1000": (1000, 1000)}))
    return path


def _owners(layer_dir: Path) -> dict[str, tuple[int, int]]:
    return {e.name: (e.stat().st_uid, e.stat().st_gid) for e in os.scandir(layer_dir)}


def test_unshare_maps_layer_owners_to_subordinate_ids(user: User) -> None:
    tar = _layer_tar(user.home / "layer.tar")
    roots = ["-g", str(user.home / "g"), "-R", str(user.home / "r"), "-s", "vfs"]
    # Explicit -U here; without a flag it is the default for a non-root user.
    for flags, store in ((["-U"], "g"), ([], "g2")):
        argv = [*flags, *roots]
        argv[argv.index("-g") + 1] = str(user.home / store)
        proc = user.cli(*argv, "import-layer", "-f", str(tar))
        assert proc.returncode == 0, proc.stderr
        layer_id = proc.stdout.split()[0]
        on_disk = _owners(user.home / store / "vfs" / "dir" / layer_id)
        mapped = SUB_START + 1000 - 1  # container 1000 = the 1000th subordinate ID
        assert on_disk == {"by-1000": (mapped, mapped), "by-root": (UID, UID)}
    listed = user.cli(*argv, "layer", "--json", layer_id)
    assert listed.returncode == 0, listed.stderr
    assert '"uidset":[0,1000]' in listed.stdout


def test_without_unshare_chown_fails_clearly(user: User) -> None:
    tar = _layer_tar(user.home / "layer.tar")
    proc = user.cli("--unshare=false", "-g", str(user.home / "g"), "-R", str(user.home / "r"),
                    "-s", "vfs", "import-layer", "-f", str(tar))
    assert proc.returncode == 1
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"chown {user.home}/g/vfs/dir/")
    assert lines[0].endswith(": operation not permitted")


def test_unshare_command_runs_inside_with_the_ranges(user: User) -> None:
    proc = user.cli("unshare", "sh", "-c",
                    'id -u; cat /proc/self/uid_map; echo "$_CONTAINERS_USERNS_CONFIGURED"; exit 7')
    assert proc.returncode == 7, proc.stderr
    out = proc.stdout.split()
    assert out == ["0", "0", str(UID), "1", "1", str(SUB_START), str(SUB_COUNT), "done"]


def test_unshare_is_a_no_op_for_root(tmp_path: Path) -> None:
    require_privileged()
    tar = _layer_tar(tmp_path / "layer.tar")
    proc = subprocess.run([sys.executable, "-m", "cs_core", "-U", "-g", str(tmp_path / "g"), "-R",
                           str(tmp_path / "r"), "-s", "vfs", "import-layer", "-f", str(tar)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    layer_dir = tmp_path / "g" / "vfs" / "dir" / proc.stdout.split()[0]
    assert _owners(layer_dir) == {"by-1000": (1000, 1000), "by-root": (0, 0)}
