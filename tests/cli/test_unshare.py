"""--unshare/-U and the unshare command, run by an unprivileged user with /etc/subuid ranges.

The user, its ranges and its passwd entry exist only in a private mount namespace
(cs_core.testing.fakeuser), so the host is never changed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cs_core.testing import require_privileged
from cs_core.testing.fakeuser import SUB_COUNT, SUB_START, UID, FakeUser, fake_user
from cs_core.testing.tars import layer_tar


@pytest.fixture
def user() -> Iterator[FakeUser]:
    with fake_user() as u:
        yield u


def _layer_tar(path: Path) -> Path:
    path.write_bytes(layer_tar([("by-1000", b"x"), ("by-root", b"x")],
                               owners={"by-1000": (1000, 1000)}))
    return path


def _owners(layer_dir: Path) -> dict[str, tuple[int, int]]:
    return {e.name: (e.stat().st_uid, e.stat().st_gid) for e in os.scandir(layer_dir)}


def test_unshare_maps_layer_owners_to_subordinate_ids(user: FakeUser) -> None:
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


def test_without_unshare_chown_fails_clearly(user: FakeUser) -> None:
    tar = _layer_tar(user.home / "layer.tar")
    proc = user.cli("--unshare=false", "-g", str(user.home / "g"), "-R", str(user.home / "r"),
                    "-s", "vfs", "import-layer", "-f", str(tar))
    assert proc.returncode == 1
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"chown {user.home}/g/vfs/dir/")
    assert lines[0].endswith(": operation not permitted")


def test_unshare_command_runs_inside_with_the_ranges(user: FakeUser) -> None:
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
