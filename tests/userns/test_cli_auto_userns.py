"""create-container --auto-userns through our CLI: errors, storage.conf keys, the Go CLI's
containers, and several processes at once (userns.lock)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cs_core.model import IDMap
from cs_core.store import open_store
from cs_core.testing.gocli import GoCLI
from cs_core.userns.idset import IDSet

from .conftest import SubIDs
from .test_store_auto_userns import make_image


class Roots:
    def __init__(self, tmp_path: Path) -> None:
        self.graph, self.run = tmp_path / "g", tmp_path / "r"

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "cs_core", "-g", str(self.graph), "-R", str(self.run),
                "-s", "vfs", *args]

    def run_cli(self, *args: str, env: dict[str, str] | None = None,
                roots: bool = True) -> subprocess.CompletedProcess[str]:
        argv = self.argv(*args) if roots else [sys.executable, "-m", "cs_core", *args]
        return subprocess.run(argv, capture_output=True, timeout=120, text=True,
                              env={**os.environ, **(env or {})})

    def ok(self, *args: str) -> str:
        proc = self.run_cli(*args)
        assert proc.returncode == 0, proc.stderr + proc.stdout
        return proc.stdout

    def image(self, name: str = "img") -> str:
        """An image made in-process (quicker than two CLI runs)."""
        store = open_store(graph_root=str(self.graph), run_root=str(self.run), driver_name="vfs")
        try:
            image = make_image(store)
            store.set_names(image.id, [name])
            return image.id
        finally:
            store.shutdown(force=True)

    def maps(self, container: str) -> tuple[list[IDMap], list[IDMap]]:
        store = open_store(graph_root=str(self.graph), run_root=str(self.run), driver_name="vfs")
        try:
            record = store.container(container)
            return record.uid_map, record.gid_map
        finally:
            store.shutdown(force=True)


@pytest.fixture
def roots(tmp_path: Path) -> Iterator[Roots]:
    r = Roots(tmp_path)
    yield r
    open_store(graph_root=str(r.graph), run_root=str(r.run), driver_name="vfs").shutdown(force=True)


def test_exhaustion_is_exit_1_with_one_line(subids: SubIDs, roots: Roots) -> None:
    subids("containers:100000:1500\n")
    roots.image()
    first = json.loads(roots.ok("create-container", "--json", "--auto-userns", "img"))
    assert first["uidmap"] == [{"container_id": 0, "host_id": 100000, "size": 1024}]
    proc = roots.run_cli("create-container", "--auto-userns", "img")
    assert (proc.returncode, proc.stdout, proc.stderr) == (
        1, "", "not enough unused IDs in user namespace\n")
    # An exact size that fits still works.
    small = json.loads(roots.ok("create-container", "-j", "--auto-userns",
                                "--auto-userns-size", "476", "img"))
    assert small["gidmap"] == [{"container_id": 0, "host_id": 101024, "size": 476}]


def test_flag_mistakes_are_one_line_errors(subids: SubIDs, roots: Roots) -> None:
    subids("containers:100000:65536\n")
    roots.image()
    for args, message in (
        (["--auto-userns", "--auto-userns-size", "-3"],
         'invalid value "-3" for flag --auto-userns-size: not a size'),
        (["--auto-userns-initial-size", "2000"],
         "--auto-userns-size and --auto-userns-initial-size need --auto-userns"),
        (["--auto-userns", "--uidmap", "0:1:1"], "--auto-userns cannot be combined with ID map flags"),
    ):
        proc = roots.run_cli("create-container", *args, "img")
        assert (proc.returncode, proc.stderr) == (1, message + "\n"), args
    initial = json.loads(roots.ok("create-container", "-j", "--auto-userns",
                                  "--auto-userns-initial-size", "2000", "img"))
    assert initial["uidmap"][0]["size"] == 2000


def test_storage_conf_keys(subids: SubIDs, tmp_path: Path, roots: Roots) -> None:
    subids("containers:100000:65536\ncs-conf:400000:5000\n")
    conf = tmp_path / "storage.conf"
    conf.write_text(f"""[storage]
driver = "vfs"
graphroot = "{roots.graph}"
runroot = "{roots.run}"
[storage.options]
root-auto-userns-user = "cs-conf"
auto-userns-min-size = 2000
auto-userns-max-size = 3000
""")
    roots.image()
    env = {"CONTAINERS_STORAGE_CONF": str(conf)}
    proc = roots.run_cli("create-container", "-j", "--auto-userns", "img", env=env, roots=False)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["uidmap"] == [{"container_id": 0, "host_id": 400000, "size": 2000}]
    proc = roots.run_cli("create-container", "--auto-userns", "--auto-userns-initial-size", "3001",
                         "img", env=env, roots=False)
    assert (proc.returncode, proc.stderr) == (1, (
        "the container needs a user namespace with size 3001 that is bigger than the maximum "
        "value allowed with userns=auto 3000\n"))


def test_ranges_of_a_go_cli_container_are_skipped(subids: SubIDs, roots: Roots) -> None:
    subids("containers:100000:65536\n")
    image = roots.image()
    go = GoCLI(roots.graph, roots.run, "vfs")
    go_container = go.out("create-container", "--uidmap", "0:100000:2000", "--gidmap",
                          "0:101000:2000", image).split()[0]
    ours = json.loads(roots.ok("create-container", "-j", "--auto-userns", image))
    assert ours["uidmap"] == [{"container_id": 0, "host_id": 102000, "size": 1024}]
    assert ours["gidmap"] == [{"container_id": 0, "host_id": 100000, "size": 1000},
                              {"container_id": 1000, "host_id": 103000, "size": 24}]
    # Go reads the result: both containers, each on its own copy of the top layer.
    listed = go.out("containers")
    assert go_container in listed and ours["id"] in listed
    assert len(go.json("image", image)[0]["mapped-layers"]) == 2


def test_concurrent_creates_pick_disjoint_ranges_and_share_mapped_copies(
        subids: SubIDs, roots: Roots) -> None:
    subids("containers:100000:65536\n")
    image = roots.image()
    same_maps = ["--uidmap", "0:300000:1024", "--gidmap", "0:300000:1024"]
    argvs = [roots.argv("create-container", "--auto-userns", image) for _ in range(4)]
    argvs += [roots.argv("create-container", *same_maps, image) for _ in range(2)]
    procs = [subprocess.Popen(a, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for a in argvs]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    ids = [out.split()[0].decode() for out, _ in outs]
    auto = [roots.maps(c) for c in ids[:4]]
    taken = IDSet()
    for uids, gids in auto:
        assert uids == gids
        mine = IDSet.host_ids(uids)
        assert mine.size == 1024
        assert taken.subtract(mine) == taken, f"overlap: {auto}"
        taken = taken.union(mine)
    assert taken == IDSet([(100000, 100000 + 4 * 1024)])
    # Four copies of the top layer for four different maps, one for the two with the same.
    store = open_store(graph_root=str(roots.graph), run_root=str(roots.run), driver_name="vfs")
    try:
        assert len(store.image(image).mapped_top_layers) == 5
        parents = {store.layer(store.container(c).layer).parent for c in ids}
        assert len(parents) == 5
    finally:
        store.shutdown(force=True)
