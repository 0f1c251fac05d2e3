"""ID-mapped layers through the CLI, upstream's ``tests/idmaps.bats`` scenarios.

A layer whose maps differ from its parent's is re-owned when it is created; its ``changes``
and ``diff`` must still list only what was changed in it, read through each layer's own
maps. Each scenario runs on vfs, btrfs (own loopback filesystem) and overlay with ID-mapped
mounts disabled (``_CONTAINERS_OVERLAY_DISABLE_IDMAP=yes``, so it re-owns too), and on vfs
and btrfs is compared with the Go CLI, which gets these right. Go 1.43 has no
``_CONTAINERS_OVERLAY_DISABLE_IDMAP``, and leaves a container layer's root unshifted
(HEAD shifts it), so those are checked against the expected values only.
"""

from __future__ import annotations

import os
import sys
import tarfile
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from cs_core.testing import require_privileged
from cs_core.testing.gocli import GoCLI, go_cli_path
from cs_core.testing.loopfs import loop_filesystem

N = 5
HOST = 2  # the layer (or container) that asks for host IDs instead of maps


class OurCLI(GoCLI):
    def __init__(self, graph: Path, run: Path, driver: str = "vfs") -> None:
        self.base = [sys.executable, "-m", "cs_core", "-g", str(graph), "-R", str(run),
                     "-s", driver]


class Place:
    """A driver, a directory to make stores in, and the CLIs made on it (released at the end)."""

    def __init__(self, driver: str, root: Path) -> None:
        self.driver, self.root = driver, root
        self.made: list[GoCLI] = []

    def ours(self, name: str, *options: str) -> GoCLI:
        cli: GoCLI = OurCLI(self.root / name / "g", self.root / name / "r", self.driver)
        cli.base += options
        self.made.append(cli)
        return cli

    def clis(self) -> list[GoCLI]:
        """Ours, and Go's where it re-owns as we do (not overlay: 1.43 ignores the knob)."""
        ours = self.ours("ours")
        if self.driver == "overlay":
            return [ours]
        go_cli_path()
        return [ours, GoCLI(self.root / "go" / "g", self.root / "go" / "r", self.driver)]

    def release(self) -> None:
        # Overlay layers are real mounts, and only ours run there. (Go 1.43's `shutdown -f`
        # never returns while a layer is mounted; vfs and btrfs mounts are plain directories.)
        if self.driver == "overlay":
            for cli in self.made:
                cli.run("shutdown", "-f", check=False)


@pytest.fixture(params=["vfs", "btrfs", "overlay"])
def place(request: pytest.FixtureRequest, tmp_path: Path,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[Place]:
    """Each driver that re-owns mapped layers."""
    require_privileged("mounts and chown to other users need root")
    with ExitStack() as stack:
        root = tmp_path
        if request.param == "btrfs":
            root = stack.enter_context(loop_filesystem("btrfs", "1G", workdir=tmp_path))
        elif request.param == "overlay":
            monkeypatch.setenv("_CONTAINERS_OVERLAY_DISABLE_IDMAP", "yes")
        found = Place(request.param, root)
        try:
            yield found
        finally:
            found.release()


def _ranges(first: int) -> list[tuple[int, int]]:
    """Distinct (uid, gid) host ranges, one per layer: what bats picks at random."""
    return [(first + i * 100000, first + i * 100000 + 50000) for i in range(N + 2)]


def _map_flags(uid: int, gid: int, size: int = N + 1) -> list[str]:
    return ["--uidmap", f"0:{uid}:{size}", "--gidmap", f"0:{gid}:{size}"]


Found = tuple[dict[str, tuple[int, int]], str, list[str], str]


def _stacked_mapped_layers(cli: GoCLI, work: Path) -> list[Found]:
    """``idmaps-create-diff-layer``: a mapped layer with file1..5, then five layers on it,
    each with other maps (or host IDs) and one file chowned to its root. Returns, per upper
    layer, (the host owners of its files minus its maps' base, ``changes`` output, the
    entries of its ``diff``, ``diffsize`` output)."""
    ranges = _ranges(1000000)
    lower = cli.out("create-layer", *_map_flags(*ranges[0])).strip()
    mount = Path(cli.out("mount", lower).strip())
    for i in range(1, N + 1):
        (mount / f"file{i}").write_bytes(os.urandom(64))
        os.chown(mount / f"file{i}", ranges[0][0] + i, ranges[0][1] + i)
    found = []
    for i in range(1, N + 1):
        if i == HOST:
            ranges[i] = (0, 0)
            upper = cli.out("create-layer", "--hostuidmap", "--hostgidmap", lower).strip()
        else:
            upper = cli.out("create-layer", *_map_flags(*ranges[i]), lower).strip()
        upper_mount = Path(cli.out("mount", upper).strip())
        os.chown(upper_mount / f"file{i}", *ranges[i])
        owners = {}
        for j in range(1, N + 1):
            uid, gid = _owners(upper_mount / f"file{j}")
            owners[f"file{j}"] = (uid - ranges[i][0], gid - ranges[i][1])
        changes = cli.out("changes", upper)
        diff = work / f"diff{i}.tar"
        cli.run("diff", "-f", str(diff), upper)
        with tarfile.open(diff) as tar:
            entries = [f"{m.name} {m.uid}:{m.gid} {m.size}" for m in tar.getmembers()]
        found.append((owners, changes, entries, cli.out("diffsize", upper)))
        lower = upper
    return found


def test_mapped_layers_report_only_their_own_changes(place: Place,
                                                     tmp_path: Path) -> None:
    results = []
    for n, cli in enumerate(place.clis()):
        work = tmp_path / f"work{n}"
        work.mkdir()
        found = _stacked_mapped_layers(cli, work)
        for i, (owners, changes, entries, size) in enumerate(found, start=1):
            who = (cli.base[0], i)
            # Inherited files are owned for this layer's maps: the ones chowned to an
            # earlier layer's root by its root, the others by their container IDs.
            assert owners == {f"file{j}": (0, 0) if j <= i else (j, j)
                              for j in range(1, N + 1)}, who
            assert changes == f'Modify "/file{i}"\n', who
            # Owned by the layer's root, which is container ID 0 whatever the host ID.
            assert entries == [f"file{i} 0:0 64"], who
            assert size == "64\n", who
        results.append(found)
    assert all(r == results[0] for r in results)


def test_hard_links_survive_layers_with_other_maps(place: Place) -> None:
    # idmaps-create-apply-layer: a hard link in a host-owned layer stays one inode in each
    # layer stacked on it with other maps. Re-owning through an overlay mount copies up the
    # first name alone, so every other name must be linked to the copy (Go's chowner).
    for cli in place.clis():
        lower = cli.out("create-layer", "--hostuidmap", "--hostgidmap").strip()
        mount = Path(cli.out("mount", lower).strip())
        (mount / "origin-file").write_bytes(os.urandom(64))
        os.chown(mount / "origin-file", 3, 3)
        os.link(mount / "origin-file", mount / "ln-file")
        ranges = _ranges(2000000)
        for i in range(1, 3):
            upper = cli.out("create-layer", *_map_flags(*ranges[i]), lower).strip()
            up = Path(cli.out("mount", upper).strip())
            origin, link = os.lstat(up / "origin-file"), os.lstat(up / "ln-file")
            assert origin.st_ino == link.st_ino, (cli.base[0], i)
            assert (origin.st_uid, origin.st_gid) == (ranges[i][0] + 3, ranges[i][1] + 3)
            assert not [p.name for p in up.iterdir() if p.name.startswith(".cs-relink")]
            lower = upper


def test_parent_owners_of_a_container_on_a_mapped_image(place: Place) -> None:
    outputs = []
    for cli in place.clis():
        layer = cli.out("create-layer", *_map_flags(3000000, 3050000)).strip()
        cli.out("mount", layer)
        layer_owners = cli.out("layer-parent-owners", layer).splitlines()[1:]
        cli.out("create-image", "--name=idmappedimage", layer)
        container = cli.out("create-container", "idmappedimage").strip()
        cli.out("mount", container)
        container_owners = cli.out("container-parent-owners", container).splitlines()[1:]
        as_json = cli.json("container-parent-owners", container)
        # The graph root's ancestors are root's; the container asked for no maps, so it
        # gets a host-owned copy of the image's top layer and has no unmapped owners.
        assert layer_owners == ["UIDs: [0]", "GIDs: [0]"], cli.base[0]
        assert container_owners == ["UIDs: []", "GIDs: []"], cli.base[0]
        outputs.append((layer_owners, container_owners, {k: v for k, v in as_json.items()
                                                         if k != "ID"}))
    assert all(o == outputs[0] for o in outputs)


def _owners(path: Path) -> tuple[int, int]:
    st = path.lstat()
    return st.st_uid, st.st_gid


def test_containers_on_a_mapped_image_get_their_own_owners(place: Place) -> None:
    """``idmaps-create-container``: host-ID, default and new-map containers on a mapped image."""
    ranges = _ranges(4000000)
    for cli in place.clis():
        layer = cli.out("create-layer", *_map_flags(*ranges[0])).strip()
        mount = Path(cli.out("mount", layer).strip())
        for i in range(1, N + 1):
            (mount / f"file{i}").write_bytes(b"x")
            os.chown(mount / f"file{i}", ranges[0][0], ranges[0][1])
        image = cli.out("create-image", layer).strip()
        cases = [(["--hostuidmap", "--hostgidmap"], (0, 0)), ([], (0, 0)),
                 (_map_flags(*ranges[N + 1]), ranges[N + 1])]
        for flags, want in cases:
            container = cli.out("create-container", *flags, image).strip()
            cmount = Path(cli.out("mount", container).strip())
            for i in range(1, N + 1):
                assert _owners(cmount / f"file{i}") == want, (cli.base[0], flags)
            # Nothing was changed in the container, whatever was re-owned for it.
            layer = cli.json("container", container)[0]["layer"]
            assert cli.out("changes", layer) == "", (cli.base[0], flags)


@pytest.mark.parametrize("place", ["vfs", "overlay"], indirect=True)  # bats: imagestore drivers
def test_container_from_an_additional_image_store_is_shifted(place: Place) -> None:
    """``idmaps-create-mapped-container``: the image's store is read-only, so the container
    layer itself is re-owned; its root directory too (Go HEAD; 1.43 leaves it 0:0)."""
    driver = place.driver
    ro = place.ours("ro")
    base = ro.out("create-layer", "--hostuidmap", "--hostgidmap").strip()
    lower = ro.out("create-layer", "--hostuidmap", "--hostgidmap", base).strip()
    mount = Path(ro.out("mount", lower).strip())
    for i in range(1, N + 1):
        (mount / f"file{i}").write_bytes(b"x")
        os.chown(mount / f"file{i}", i, i)
    ro.out("unmount", lower)
    image = ro.out("create-image", lower).strip()
    ro.out("shutdown")
    cli = place.ours("main", "--storage-opt", f"{driver}.imagestore={place.root / 'ro' / 'g'}")
    ranges = _ranges(5000000)
    ranges[HOST] = (0, 0)
    for n in range(1, N + 1):
        flags = ["--hostuidmap", "--hostgidmap"] if n == HOST else _map_flags(*ranges[n])
        container = cli.out("create-container", *flags, image).strip()
        cmount = Path(cli.out("mount", container).strip())
        assert _owners(cmount) == ranges[n], n
        for i in range(1, N + 1):
            assert _owners(cmount / f"file{i}") == (ranges[n][0] + i, ranges[n][1] + i), n
        layer = cli.json("container", container)[0]["layer"]
        assert cli.out("changes", layer) == "", n
        cli.out("unmount", container)
        assert cli.json("layer", layer)[0]["parent"] == lower
