"""Rootless end to end: an unprivileged user with /etc/subuid ranges runs our CLI with its
default store, --unshare (explicit or by default) and create-container --auto-userns.

Inside the user's namespace its subordinate IDs appear as 1..N (0 is the user itself); auto
user namespaces hand out ranges of those, which the kernel maps on to the subordinate host
IDs. The user exists only in a private mount namespace (cs_core.testing.fakeuser).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cs_core.model import IDMap
from cs_core.testing.fakeuser import SUB_COUNT, SUB_START, UID, FakeUser, fake_user
from cs_core.testing.tars import layer_tar
from cs_core.userns.idset import IDSet

# The namespace --unshare makes: the user as 0, its subordinate range from 1 (what
# tests/cli/test_unshare.py reads from /proc/self/uid_map in there).
NAMESPACE_MAP = [IDMap(0, UID, 1), IDMap(1, SUB_START, SUB_COUNT)]


@pytest.fixture
def user() -> Iterator[FakeUser]:
    with fake_user() as u:
        yield u


def _ok(user: FakeUser, *args: str, env: dict[str, str]) -> str:
    proc = user.cli(*args, env=env)
    assert proc.returncode == 0, f"{args}: {proc.stderr}"
    return proc.stdout


def _status(user: FakeUser, *flags: str, env: dict[str, str]) -> str:
    """``status`` output, which goes to stderr as Go's does."""
    proc = user.cli(*flags, "status", env=env)
    assert proc.returncode == 0, proc.stderr
    return proc.stderr


def _to_host(maps: list[IDMap]) -> IDSet:
    """The host IDs a container's maps (in namespace IDs) end up on."""
    host = IDSet()
    for m in maps:
        for outer in NAMESPACE_MAP:
            lo = max(m.host_id, outer.container_id)
            hi = min(m.host_id + m.size, outer.container_id + outer.size)
            if lo < hi:
                start = outer.host_id + lo - outer.container_id
                host = host.union(IDSet([(start, start + hi - lo)]))
    return host


def _owner(path: Path) -> tuple[int, int]:
    st = os.lstat(path)
    return st.st_uid, st.st_gid


@pytest.mark.parametrize("driver", ["vfs", "overlay"])
def test_auto_userns_in_the_default_rootless_store(user: FakeUser, driver: str) -> None:
    env = {"STORAGE_DRIVER": driver, "TMPDIR": str(user.home)}
    tar = user.home / "layer.tar"
    tar.write_bytes(layer_tar([("f", b"x"), ("r", b"y")], owners={"f": (5, 6)}))
    os.chmod(tar, 0o644)
    layer = _ok(user, "import-layer", "-f", str(tar), env=env).split()[0]
    image = _ok(user, "create-image", layer, env=env).split()[0]

    # With -U and without (the default for a non-root user): same store, disjoint ranges.
    created = [json.loads(_ok(user, *flags, "create-container", "-j", "--auto-userns", image,
                              env=env)) for flags in (["-U"], [])]
    maps = [[IDMap(**m) for m in c["uidmap"]] for c in created]
    assert maps == [[IDMap(0, 1, 1024)], [IDMap(0, 1025, 1024)]]
    assert all(c["gidmap"] == c["uidmap"] for c in created)
    hosts = [_to_host(m) for m in maps]
    assert hosts == [IDSet([(SUB_START, SUB_START + 1024)]),
                     IDSet([(SUB_START + 1024, SUB_START + 2048)])]

    # No -g: the per-user default store (where the files below are found).
    graph = user.home / ".local" / "share" / "containers" / "storage"

    # On the host, the files belong to the subordinate IDs each container was given:
    # namespace ID (map start + container ID) is host ID SUB_START + that - 1.
    if driver == "vfs":
        image_dir = graph / "vfs" / "dir" / layer
        dirs = [graph / "vfs" / "dir" / c["layer"] for c in created]
    else:
        image_dir = graph / "overlay" / layer / "diff"
        # The container layer is empty; the image's top layer was copied and chowned for it.
        records = json.loads((graph / "overlay-layers" / "layers.json").read_text())
        parent = {r["id"]: r.get("parent", "") for r in records}
        parents = [parent[c["layer"]] for c in created]
        dirs = [graph / "overlay" / p / "diff" for p in parents]
    assert _owner(image_dir / "f") == (SUB_START + 4, SUB_START + 5)
    assert _owner(image_dir / "r") == (UID, UID)
    for directory, start in zip(dirs, (1, 1025), strict=True):
        assert _owner(directory / "f") == (SUB_START + start + 4, SUB_START + start + 5)
        assert _owner(directory / "r") == (SUB_START + start - 1,) * 2

    # Mounted inside the namespace (the only place a rootless mount exists), the container's
    # files show the namespace IDs.
    script = (f'm=$("$0" -m cs_core mount {created[1]["id"]}) && stat -c %u:%g "$m/f" "$m/r" '
              f'&& "$0" -m cs_core unmount {created[1]["id"]}')
    proc = user.run("sh", "-c", f'exec "$0" -m cs_core unshare sh -c \'{script}\' "$0"',
                    sys.executable, env=env)
    assert proc.returncode == 0, proc.stderr
    stat_lines, unmounted = proc.stdout.splitlines()[:2], proc.stdout.splitlines()[2:]
    assert stat_lines == ["1030:1031", "1025:1025"]
    assert unmounted == [f"{created[1]['id']} mountpoint unmounted"]


def test_storage_conf_and_paths_inside_the_namespace(user: FakeUser) -> None:
    # The user's own storage.conf (under $XDG_CONFIG_HOME) is read inside the namespace too,
    # where we are UID 0: $UID in it is still the user's.
    config_home = user.home / "config"
    (config_home / "containers").mkdir(parents=True)
    (config_home / "containers" / "storage.conf").write_text(
        '[storage]\ndriver = "vfs"\nrootless_storage_path = "$HOME/store-$UID"\n')
    env = {"XDG_CONFIG_HOME": str(config_home), "XDG_RUNTIME_DIR": str(user.home / "run")}
    probe = ("import json, os; from cs_core.config import StoreOptions; o = StoreOptions.load_default(); "
             "print(json.dumps([os.geteuid(), o.config_file, o.graph_root, o.run_root, o.driver_name]))")
    inside = user.cli("unshare", sys.executable, "-c", probe, env=env)
    assert inside.returncode == 0, inside.stderr
    outside = user.run(sys.executable, "-c", probe, env=env)
    assert outside.returncode == 0, outside.stderr
    expected = [str(config_home / "containers" / "storage.conf"), f"{user.home}/store-{UID}",
                f"{user.home}/run/containers", "vfs"]
    assert json.loads(inside.stdout) == [0, *expected]
    assert json.loads(outside.stdout) == [UID, *expected]
    status = _status(user, "-U", env=env)
    assert f"Root: {user.home}/store-{UID}" in status.splitlines()
    assert "Driver Name: vfs" in status.splitlines()

    # XDG_DATA_HOME places the store when storage.conf does not.
    (config_home / "containers" / "storage.conf").unlink()
    env = {**env, "XDG_DATA_HOME": str(user.home / "data"), "STORAGE_DRIVER": "vfs"}
    status = _status(user, env=env)
    assert f"Root: {user.home}/data/containers/storage" in status.splitlines()
    # With no XDG_RUNTIME_DIR, the run root goes under $TMPDIR (made private for the user).
    del env["XDG_RUNTIME_DIR"]
    env["TMPDIR"] = str(user.home)
    status = _status(user, env=env)
    assert f"Run Root: {user.home}/storage-run-{UID}/containers" in status.splitlines()


def test_run_root_in_run_user_inside_and_outside_the_namespace() -> None:
    # Inside the namespace the user's /run/user/<uid> shows as owned by 0, our UID there.
    with fake_user(run_user_dir=True) as user:
        env = {"STORAGE_DRIVER": "vfs", "TMPDIR": str(user.home)}
        for flags in (["-U"], ["--unshare=false"]):
            status = _status(user, *flags, env=env)
            assert f"Run Root: /run/user/{UID}/containers" in status.splitlines(), flags


def test_run_root_in_a_tmp_dir_someone_else_made_is_refused(user: FakeUser) -> None:
    tmp = user.home / "tmp"
    (tmp / f"storage-run-{UID}").mkdir(mode=0o700, parents=True)  # root's, not the user's
    os.chmod(tmp, 0o1777)  # as /tmp: without the sticky bit the store refuses it
    env = {"STORAGE_DRIVER": "vfs", "TMPDIR": str(tmp)}
    status = _status(user, env=env)
    assert f"Run Root: {user.home}/rundir/containers" in status.splitlines()
    # Once it is gone, the user makes its own.
    (tmp / f"storage-run-{UID}").rmdir()
    status = _status(user, env=env)
    assert f"Run Root: {tmp}/storage-run-{UID}/containers" in status.splitlines()
    assert (tmp / f"storage-run-{UID}").stat().st_uid == UID
