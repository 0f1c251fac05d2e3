"""The naive diff driver over a minimal directory-copy driver (scaffolding; naive is what is tested)."""

from __future__ import annotations

import io
import os
import shutil
import stat
import tarfile
from pathlib import Path

import pytest

from cs_core import walk
from cs_core.archive.tarsplit import TarSplitWriter, reassemble
from cs_core.drivers.base import ApplyDiffOpts, CreateOpts, DriverConfig, GraphDriver, MountOpts
from cs_core.errors import UnsafeArchive
from cs_core.model import Change, IDMap
from cs_core.testing import require_privileged

from .conftest import make_tar, member


class CopyDriver(GraphDriver):
    name = "copytest"

    def __init__(self, config: DriverConfig) -> None:
        super().__init__(config)
        self.mounted: dict[str, int] = {}

    def create(self, id: str, parent: str | None, opts: CreateOpts) -> None:
        if parent:
            shutil.copytree(self.home / parent, self.home / id, symlinks=True)
        else:
            (self.home / id).mkdir(parents=True)

    def remove(self, id: str) -> None:
        shutil.rmtree(self.home / id, ignore_errors=True)

    def get(self, id: str, opts: MountOpts) -> Path:
        self.mounted[id] = self.mounted.get(id, 0) + 1
        return self.home / id

    def put(self, id: str) -> None:
        self.mounted[id] -= 1

    def exists(self, id: str) -> bool:
        return (self.home / id).is_dir()

    def list_layers(self) -> list[str]:
        return os.listdir(self.home)

    def layer_dir(self, id: str) -> Path:
        return self.home / id


@pytest.fixture
def driver(tmp_path: Path) -> CopyDriver:
    return CopyDriver(
        DriverConfig(
            home=tmp_path / "home", run_home=tmp_path / "run", graph_root=tmp_path, run_root=tmp_path / "run"
        )
    )


def _names(data: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        return tf.getnames()


def _balanced(driver: CopyDriver) -> None:
    assert all(n == 0 for n in driver.mounted.values()), driver.mounted


def test_apply_diff_changes_and_diff(driver: CopyDriver) -> None:
    driver.create("base", None, CreateOpts())
    base_tar = make_tar(
        member("etc", tarfile.DIRTYPE), member("etc/a", data=b"a"), member("etc/b", data=b"b")
    )
    ts = io.BytesIO()
    result = driver.apply_diff(
        "base", None, io.BytesIO(base_tar), ApplyDiffOpts(tar_split=TarSplitWriter(ts))
    )
    assert result.size == len(base_tar)
    getter = driver.diff_getter("base")
    out = io.BytesIO()
    try:
        reassemble(io.BytesIO(ts.getvalue()), getter.open, out)
    finally:
        getter.close()
    assert out.getvalue() == base_tar
    driver.create("child", "base", CreateOpts())
    driver.apply_diff(
        "child",
        "base",
        io.BytesIO(make_tar(member("etc/.wh.a"), member("etc/c", data=b"ccc"))),
        ApplyDiffOpts(),
    )
    got = [(c.kind_name, c.path) for c in driver.changes("child", "base")]
    assert got == [("Modify", "/etc"), ("Delete", "/etc/a"), ("Add", "/etc/c")]
    assert driver.diff_size("child", "base") == 3
    stream = driver.diff("child", "base")
    try:
        names = _names(stream.read())
    finally:
        stream.close()
    assert names == ["etc", "etc/.wh.a", "etc/c"]
    whole = driver.diff("child", None)
    try:
        names = _names(whole.read())
    finally:
        whole.close()
    assert names == ["etc", "etc/b", "etc/c"]
    _balanced(driver)


def test_diff_stream_is_a_pipe_with_bounded_memory(driver: CopyDriver) -> None:
    driver.create("big", None, CreateOpts())
    for i in range(8):
        (driver.home / "big" / f"f{i}").write_bytes(os.urandom(4 << 20))
    stream = driver.diff("big", None)
    try:
        first = stream.read(65536)
        assert first[257:262] == b"ustar"
        total = len(first)
        while chunk := stream.read(1 << 20):
            total += len(chunk)
    finally:
        stream.close()
    assert total >= 32 << 20
    # Closing early must not hang or leak a mount.
    early = driver.diff("big", None)
    early.read(10)
    early.close()
    _balanced(driver)


def test_file_getter_stays_inside(driver: CopyDriver, tmp_path: Path) -> None:
    driver.create("l", None, CreateOpts())
    (tmp_path / "secret").write_text("s")
    os.symlink(tmp_path / "secret", driver.home / "l" / "abs")
    getter = driver.diff_getter("l")
    try:
        with pytest.raises((OSError, UnsafeArchive)):
            getter.open("abs")
        with pytest.raises(UnsafeArchive):
            getter.open("../secret")
    finally:
        getter.close()
    _balanced(driver)


def test_update_layer_id_map(driver: CopyDriver) -> None:
    require_privileged("chown needs root")
    driver.create("m", None, CreateOpts())
    root = driver.home / "m"
    (root / "f").write_text("x")
    os.chown(root / "f", 5, 6)
    os.chmod(root / "f", 0o4755)
    os.link(root / "f", root / "g")
    os.symlink("f", root / "s")
    maps = ([IDMap(0, 100000, 65536)], [IDMap(0, 200000, 65536)])
    driver.update_layer_id_map("m", ([], []), maps)
    st = os.stat(root / "f")
    assert (st.st_uid, st.st_gid) == (100005, 200006)
    assert stat.S_IMODE(st.st_mode) == 0o4755  # chown cleared setuid; it was put back
    assert os.lstat(root / "s").st_uid == 100000
    # And back again.
    driver.update_layer_id_map("m", maps, ([], []))
    assert (os.stat(root / "f").st_uid, os.stat(root / "f").st_gid) == (5, 6)
    _balanced(driver)


def test_disk_usage(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"x" * 1000)
    os.link(tmp_path / "a", tmp_path / "b")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "c").write_bytes(b"y" * 10)
    assert walk.disk_usage(tmp_path) == 1010


def test_changes_kinds_are_go_numbers() -> None:
    assert (Change.MODIFY, Change.ADD, Change.DELETE) == (0, 1, 2)
