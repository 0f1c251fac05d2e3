"""Hostile layers and records against a real store, through our CLI.

A layer nested deeper than Python's recursion limit (and a container tree deeper than PATH_MAX)
must go through every command that walks a tree; a layer whose files cannot be removed must not
stop the store from opening.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from cs_core.atomic import remove_tree
from cs_core.testing import require_privileged, requires_command
from cs_core.testing.loopfs import loop_filesystem

# Past sys.getrecursionlimit() (1,000); its 3,000-byte names, under a layer's directory, stay
# under PATH_MAX (4,096), which bounds what a tar can name (Go's import fails past it too).
TAR_DEPTH = 1500
# Past PATH_MAX (10,000 bytes of path): only reachable by building it inside a mounted container.
DEEP = 5000


def deep_tar(depth: int) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        path = ""
        for _ in range(depth):
            path = f"{path}/d" if path else "d"
            info = tarfile.TarInfo(path)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        data = b"deep\n"
        info = tarfile.TarInfo(f"{path}/f")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class Run:
    """Our CLI on one store."""

    def __init__(self, root: Path, driver: str) -> None:
        self.base = [sys.executable, "-m", "cs_core", "-g", str(root / "g"), "-R", str(root / "r"),
                     "-s", driver]
        self.graph = root / "g"

    def __call__(self, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([*self.base, *args], input=stdin, capture_output=True, timeout=600)
        return subprocess.CompletedProcess(proc.args, proc.returncode,
                                           proc.stdout.decode(errors="replace"),
                                           proc.stderr.decode(errors="replace"))

    def ok(self, *args: str, stdin: bytes | None = None) -> str:
        r = self(*args, stdin=stdin)
        assert r.returncode == 0, f"{args}: rc={r.returncode}\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}"
        assert "internal error" not in r.stderr, r.stderr
        return r.stdout

    def clean_failure_or_ok(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Commands that may refuse a tree they cannot express must say so in one line."""
        r = self(*args)
        assert "internal error" not in r.stderr and "Traceback" not in r.stderr, r.stderr[-2000:]
        if r.returncode:
            assert len(r.stderr.strip().splitlines()) == 1, r.stderr[-2000:]
        return r


@pytest.fixture(params=["vfs", "overlay", "btrfs"])
def cli(request: pytest.FixtureRequest, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> Iterator[Run]:
    driver: str = request.param
    with ExitStack() as stack:
        root = tmp_path
        if driver != "vfs":
            require_privileged(f"the {driver} driver needs root and mounts")
        if driver == "btrfs":
            root = stack.enter_context(loop_filesystem("btrfs", "2G", workdir=tmp_path))
        if driver == "overlay":
            # Re-owning then goes through the naive walk (the case under test), not idmapped mounts.
            monkeypatch.setenv("_CONTAINERS_OVERLAY_DISABLE_IDMAP", "yes")
        run = Run(root, driver)
        try:
            yield run
        finally:
            run("shutdown", "-f")
            _remove_deep(root)


def _remove_deep(root: Path) -> None:
    # pytest's own clean-up of old temporary directories recurses: leave no deep tree behind.
    for name in ("g", "r"):
        remove_tree(root / name)


def _build_deep(top: Path, depth: int) -> None:
    """mkdir ``depth`` levels below ``top`` by fd (a path this long cannot be named whole)."""
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(depth):
            os.mkdir("x", dir_fd=fd)
            nfd = os.open("x", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = nfd
        with open(os.open("f", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd), "wb") as f:
            f.write(b"bottom\n")
    finally:
        os.close(fd)


def test_layer_deeper_than_the_recursion_limit(cli: Run) -> None:
    stream = deep_tar(TAR_DEPTH)
    layer = cli.ok("import-layer", stdin=stream).strip()
    assert layer in cli.ok("layers")
    r = subprocess.run([*cli.base, "diff", layer], capture_output=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    with tarfile.open(fileobj=io.BytesIO(r.stdout)) as tar:
        assert len(tar.getnames()) == TAR_DEPTH + 1
    changes = cli.ok("changes", layer).splitlines()
    assert len(changes) == TAR_DEPTH + 1 and {c.split()[0] for c in changes} == {"Add"}
    cli.ok("create-image", "--id", "img", layer)
    cli.ok("create-container", "--id", "ctr", "img")
    # A container with other ID maps gets a re-owned copy (vfs, btrfs) or a re-owned layer.
    cli.ok("create-container", "--id", "mapped", "--uidmap", "0:100000:65536",
           "--gidmap", "0:100000:65536", "img")
    merged = Path(cli.ok("mount", "mapped").strip())
    try:
        leaf = os.open(merged, os.O_RDONLY | os.O_DIRECTORY)
        try:
            for _ in range(TAR_DEPTH):
                nfd = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=leaf)
                os.close(leaf)
                leaf = nfd
            assert os.stat("f", dir_fd=leaf, follow_symlinks=False).st_uid == 100000
        finally:
            os.close(leaf)
    finally:
        cli.ok("unmount", "mapped")
    cli.ok("check")
    cli.ok("delete-container", "mapped")
    cli.ok("delete-container", "ctr")
    cli.ok("delete-image", "img")
    assert layer not in cli.ok("layers")
    cli.ok("import-layer", stdin=stream)
    cli.ok("wipe")
    assert cli.ok("layers") == ""
    cli.ok("check")


def _deep_container(cli: Run, name: str) -> None:
    """A container of image ``img`` whose tree is built deeper than PATH_MAX through its mount."""
    cli.ok("create-container", "--id", name, "img")
    merged = Path(cli.ok("mount", name).strip())
    try:
        _build_deep(merged, DEEP)
    finally:
        cli.ok("unmount", name)


def test_container_tree_deeper_than_path_max(cli: Run) -> None:
    base = cli.ok("import-layer", stdin=deep_tar(1)).strip()
    cli.ok("create-image", "--id", "img", base)
    _deep_container(cli, "ctr")
    cli.ok("layers")
    cli.clean_failure_or_ok("check")
    cli.clean_failure_or_ok("diff", "ctr")
    cli.clean_failure_or_ok("changes", "ctr")
    cli.ok("delete-container", "ctr")
    assert "ctr" not in cli.ok("containers")
    # Nothing of the container's layer is left in the driver's home.
    leftovers = [p for p in cli.graph.rglob("f") if p.read_bytes() == b"bottom\n"]
    assert leftovers == []
    _deep_container(cli, "again")
    cli.ok("wipe")
    assert cli.ok("layers") == ""


@pytest.fixture
def ext4(tmp_path: Path) -> Iterator[Path]:
    require_privileged("an ext4 loop filesystem and chattr need root")
    requires_command("chattr")
    with loop_filesystem("ext4", "256M", workdir=tmp_path) as mnt:
        yield mnt


def test_undeletable_incomplete_layer_does_not_stop_the_store(ext4: Path) -> None:
    cli = Run(ext4, "vfs")
    keep = cli.ok("import-layer", stdin=deep_tar(1)).strip()
    stuck = cli.ok("import-layer", stdin=deep_tar(3)).strip()
    pinned = cli.graph / "vfs" / "dir" / stuck / "d" / "d" / "d" / "f"
    subprocess.run(["chattr", "+i", str(pinned)], check=True)
    try:
        r = cli("delete-layer", stuck)
        assert r.returncode == 1 and "operation not permitted" in r.stderr
        # The record is left flagged incomplete: every open retries, says so once, goes on.
        for command in (("layers",), ("check",), ("images",)):
            r = cli(*command)
            assert "internal error" not in r.stderr, r.stderr
            errors = [line for line in r.stderr.splitlines() if "incomplete layer" in line]
            assert len(errors) == 1 and stuck in errors[0], r.stderr
        assert keep in cli.ok("layers")
    finally:
        subprocess.run(["chattr", "-i", str(pinned)], check=True)
    assert cli.ok("layers").split() == [keep]
    assert not (cli.graph / "vfs" / "dir" / stuck).exists()
    cli("shutdown", "-f")
    _remove_deep(ext4)


def _snapshot(root: Path, skip: Path) -> set[str]:
    return {str(p) for p in root.rglob("*") if skip not in p.parents and p != skip}


@pytest.mark.parametrize("command", [
    ("import-layer", "--id", "{id}"), ("create-layer", "--id", "{id}"),
    ("create-image", "--id", "{id}", "base"), ("create-container", "--id", "{id}", "img"),
])
@pytest.mark.parametrize("bad", ["../../../outside", "a/b", "..", "."])
def test_ids_that_are_not_one_path_component_are_refused(tmp_path: Path, command: tuple[str, ...],
                                                         bad: str) -> None:
    cli = Run(tmp_path, "vfs")
    cli.ok("create-layer", "--id", "base")
    cli.ok("create-image", "--id", "img", "base")
    before = _snapshot(tmp_path, cli.graph)
    listed = (cli.ok("layers"), cli.ok("images"), cli.ok("containers"))
    args = [a.replace("{id}", bad) for a in command]
    r = cli(*args, stdin=deep_tar(1))
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert r.stderr.strip().endswith("not a valid ID") and len(r.stderr.strip().splitlines()) == 1
    assert _snapshot(tmp_path, cli.graph) == before  # nothing written beside the store
    assert (cli.ok("layers"), cli.ok("images"), cli.ok("containers")) == listed
    # What Go accepts and is one path component still works (Go 1.43 takes any string).
    cli.ok(*[a.replace("{id}", "Odd ID-1") for a in command], stdin=deep_tar(1))


@pytest.mark.parametrize(("records", "field"), [
    ("vfs-containers/containers.json", "id"), ("vfs-images/images.json", "id"),
    ("vfs-layers/layers.json", "id"), ("vfs-layers/layers.json", "parent"),
    ("vfs-containers/containers.json", "layer"),
])
def test_hand_edited_record_ids_cannot_reach_outside(tmp_path: Path, records: str,
                                                     field: str) -> None:
    import json

    cli = Run(tmp_path, "vfs")
    cli.ok("create-layer", "--id", "base")
    cli.ok("create-layer", "--id", "top", "base")
    cli.ok("create-image", "--id", "img", "--name", "i1", "top")
    cli.ok("create-container", "--id", "ctr", "--name", "c1", "img")
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep").write_text("precious")
    path = cli.graph / records
    data = json.loads(path.read_text())
    target = next(r for r in data if r.get(field) and r["id"] in ("ctr", "img", "top"))
    # From <graph>/vfs-*/<id> (or vfs/dir/<id>), four levels up is tmp_path.
    target[field] = "../../../../victim"
    path.write_text(json.dumps(data))
    listing = records.split("/")[0].removeprefix("vfs-")
    for command in (("delete-container", "c1"), ("delete-image", "i1"), ("delete-layer", "top"),
                    (listing,), ("wipe",)):
        r = cli(*command)
        said = (r.stdout + r.stderr).strip()  # the delete commands report per argument on stdout
        assert r.returncode != 0, command
        assert f"loading {path}" in said and "unsafe ID" in said, said
        assert len(said.splitlines()) == 1, said
    assert (victim / "keep").read_text() == "precious"


def test_big_data_keys_dot_and_dot_dot_are_refused(tmp_path: Path) -> None:
    cli = Run(tmp_path, "vfs")
    cli.ok("create-layer", "--id", "base")
    cli.ok("create-image", "--id", "img", "base")
    data = tmp_path / "data"
    data.write_text("x")
    for key in (".", ".."):
        r = cli("set-image-data", "-f", str(data), "img", key)
        assert r.returncode == 1 and "not a valid name for a big data item" in r.stderr, r.stderr
    assert cli.ok("list-image-data", "img") == ""


def test_removal_never_chmods_through_a_symlink() -> None:
    """A rootless owner's read-only layer directory holding a symlink to another of its files."""
    from cs_core.testing.fakeuser import fake_user

    with fake_user() as user:
        victim = user.home / "victim"
        victim.write_text("mine")
        os.chmod(victim, 0o644)
        layer = user.home / "layer"
        (layer / "ro").mkdir(parents=True)
        (layer / "ro" / "link").symlink_to(victim)
        for path in (victim, layer, layer / "ro", layer / "ro" / "link"):
            os.lchown(path, user.uid, user.uid)
        os.chmod(layer / "ro", 0o555)  # its owner may not unlink inside until it chmods
        code = f"from cs_core.atomic import remove_tree; remove_tree({str(layer)!r})"
        r = user.run(sys.executable, "-c", code)
        assert r.returncode == 0, r.stderr
        assert not os.path.lexists(layer)
        assert oct(os.stat(victim).st_mode & 0o777) == oct(0o644)


@pytest.mark.parametrize("nested", ["[" * 100000 + "]" * 100000,
                                    '[{"id":"a","flags":' + '{"a":' * 5000 + "1" + "}" * 5001 + "]"])
def test_deeply_nested_record_file_is_a_corrupt_file(tmp_path: Path, nested: str) -> None:
    cli = Run(tmp_path, "vfs")
    cli.ok("create-layer")
    path = cli.graph / "vfs-layers" / "layers.json"
    path.write_text(nested)
    r = cli("layers")
    said = (r.stdout + r.stderr).strip()
    assert r.returncode == 1 and "internal error" not in said, said
    assert said == (f"error initializing: loading {path}: JSON nested too deeply: "
                    f"corrupt bookkeeping file; restore {path} from a backup, or move it aside, "
                    "which forgets its layers (`containers-storage check` then lists what used "
                    "them)")
