"""Native changes (generation numbers) against the naive full-tree comparison, on the same layers."""

from __future__ import annotations

import io
import os
import random
import tarfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from cs_btrfs import ioctl, native
from cs_btrfs.driver import BtrfsDriver

from cs_core.drivers import naive
from cs_core.drivers.base import CreateOpts
from cs_core.model import Change


def _populate(root: Path) -> None:
    for d in ("etc/ssl", "usr/bin", "usr/lib/x/y", "var/empty", "home/u"):
        (root / d).mkdir(parents=True)
    for i in range(40):
        (root / "usr/lib/x/y" / f"lib{i}.so").write_bytes(b"x" * i)
    (root / "etc/passwd").write_text("root:x:0:0\n")
    (root / "etc/ssl/cert").write_text("cert")
    (root / "usr/bin/tool").write_text("#!")
    os.chmod(root / "usr/bin/tool", 0o755)
    os.link(root / "usr/bin/tool", root / "usr/bin/tool-alias")
    os.symlink("tool", root / "usr/bin/link")
    os.mkfifo(root / "var/fifo")
    os.setxattr(root / "etc/ssl/cert", "user.k", b"v")


def _layers(driver: BtrfsDriver, mutate: Callable[[Path], None]) -> None:
    driver.create("parent", None, CreateOpts())
    os.chmod(driver.layer_dir("parent"), 0o755)
    _populate(driver.layer_dir("parent"))
    # Past the coarse clock tick of the last parent write: a parent inode whose ctime shares the
    # snapshot's tick and is later rewritten (atime) is ambiguous, and native.usable declines it
    # (test_falls_back_when_not_sound covers that).
    time.sleep(0.05)
    driver.create_read_write("child", "parent", CreateOpts())
    mutate(driver.layer_dir("child"))


def _compare(driver: BtrfsDriver) -> list[Change]:
    # The full comparison first: it reads every directory and file of both layers, so atime
    # updates land in both trees; they must neither disable nor fool the native path.
    want = naive.changes(driver, "child", "parent")
    for layer in ("parent", "child"):
        for f in driver.layer_dir(layer).rglob("*"):
            if f.is_file() and not f.is_symlink():
                f.read_bytes()
    with ioctl.open_dir(driver.layer_dir("child")) as c, ioctl.open_dir(driver.layer_dir("parent")) as p:
        assert native.usable(c, p) is not None, "native path not taken"
    got = driver.changes("child", "parent")
    assert [(c.path, c.kind) for c in got] == [(c.path, c.kind) for c in want]
    assert driver.diff_size("child", "parent") == naive.diff_size(driver, "child", "parent")
    with driver.diff("child", "parent") as s1, naive.diff(driver, "child", "parent") as s2:
        a, b = s1.read(), s2.read()
    with tarfile.open(fileobj=io.BytesIO(a)) as t1, tarfile.open(fileobj=io.BytesIO(b)) as t2:
        assert [(m.name, m.size, m.type) for m in t1] == [(m.name, m.size, m.type) for m in t2]
    return got


def _edit_everything(root: Path) -> None:
    (root / "etc/passwd").write_text("root:x:0:0\nuser:x:1000:1000\n")  # content
    os.chmod(root / "etc/ssl/cert", 0o600)  # mode only
    os.chown(root / "usr/lib/x/y/lib3.so", 1000, 1000)  # owner only, deep
    os.setxattr(root / "usr/lib/x/y/lib4.so", "user.new", b"1")  # xattr only
    os.remove(root / "usr/lib/x/y/lib5.so")  # delete, deep
    os.rename(root / "usr/lib/x/y/lib6.so", root / "usr/lib/lib6-moved.so")  # rename across dirs
    os.link(root / "usr/lib/x/y/lib7.so", root / "home/u/hard")  # new hardlink to an old file
    import shutil

    shutil.rmtree(root / "var/empty")  # delete a directory
    (root / "var/fifo").unlink()
    (root / "var/fifo").mkdir()  # a file became a directory
    (root / "var/fifo/inside").write_text("new")
    shutil.rmtree(root / "etc/ssl")  # a directory became a file
    (root / "etc/ssl").write_text("now a file")
    (root / "opt/new/deep").mkdir(parents=True)  # new tree
    (root / "opt/new/deep/f").write_text("f")
    os.symlink("elsewhere", root / "usr/bin/link2")
    os.utime(root / "usr/lib/x/y/lib8.so", ns=(0, 1_000_000_000))  # mtime only


def test_no_change(driver: BtrfsDriver) -> None:
    _layers(driver, lambda root: None)
    assert _compare(driver) == []


def test_every_kind_of_edit(driver: BtrfsDriver) -> None:
    _layers(driver, _edit_everything)
    got = {(c.path, c.kind) for c in _compare(driver)}
    assert ("/usr/lib/x/y/lib5.so", Change.DELETE) in got
    assert ("/home/u/hard", Change.ADD) in got
    assert ("/usr/lib/x/y/lib3.so", Change.MODIFY) in got


def test_reads_and_same_content_rewrites_are_not_changes(driver: BtrfsDriver) -> None:
    def touch_without_change(root: Path) -> None:
        (root / "etc/passwd").read_text()
        st = os.stat(root / "usr/bin/tool")
        os.chmod(root / "usr/bin/tool", st.st_mode & 0o7777)  # ctime moves, nothing else
        os.utime(root / "usr/bin/tool", ns=(st.st_atime_ns, st.st_mtime_ns))

    _layers(driver, touch_without_change)
    assert _compare(driver) == []


@pytest.mark.parametrize("seed", range(5))
def test_random_edits(driver: BtrfsDriver, seed: int) -> None:
    rng = random.Random(seed)

    def mutate(root: Path) -> None:
        for _ in range(60):
            files = [p for p in root.rglob("*") if p.is_file() and not p.is_symlink()]
            dirs = [p for p in root.rglob("*") if p.is_dir() and not p.is_symlink()] + [root]
            op = rng.choice(["write", "add", "rm", "mkdir", "chmod", "rename", "xattr"])
            if op == "write" and files:
                rng.choice(files).write_bytes(rng.randbytes(rng.randint(0, 64)))
            elif op == "add":
                (rng.choice(dirs) / f"n{rng.randint(0, 999)}").write_text("n")
            elif op == "rm" and files:
                rng.choice(files).unlink()
            elif op == "mkdir":
                (rng.choice(dirs) / f"d{rng.randint(0, 999)}").mkdir(exist_ok=True)
            elif op == "chmod" and files:
                os.chmod(rng.choice(files), rng.choice([0o600, 0o644, 0o755]))
            elif op == "rename" and files:
                src = rng.choice(files)
                dst = rng.choice(dirs) / f"r{rng.randint(0, 999)}"
                if not dst.exists():
                    os.rename(src, dst)
            elif op == "xattr" and files:
                os.setxattr(rng.choice(files), "user.r", rng.randbytes(3))

    _layers(driver, mutate)
    _compare(driver)


def test_falls_back_when_not_sound(driver: BtrfsDriver) -> None:
    def edit(root: Path) -> None:
        (root / "etc/passwd").write_text("changed")

    _layers(driver, edit)
    driver.create("other", None, CreateOpts())
    with ioctl.open_dir(driver.layer_dir("child")) as c, ioctl.open_dir(driver.layer_dir("other")) as o:
        assert native.usable(c, o) is None  # not the snapshot source
    os.chmod(driver.layer_dir("parent") / "usr/bin/tool", 0o700)  # same inode, changed in place
    with ioctl.open_dir(driver.layer_dir("child")) as c, ioctl.open_dir(driver.layer_dir("parent")) as p:
        assert native.usable(c, p) is None
    (driver.layer_dir("parent") / "etc/late").write_text("parent changed after the snapshot")
    with ioctl.open_dir(driver.layer_dir("child")) as c, ioctl.open_dir(driver.layer_dir("parent")) as p:
        assert native.usable(c, p) is None
    # The driver still answers, through the full comparison.
    got = [(c.path, c.kind) for c in driver.changes("child", "parent")]
    assert got == [(c.path, c.kind) for c in naive.changes(driver, "child", "parent")]
    assert ("/etc/late", Change.DELETE) in got
    assert ("/usr/bin/tool", Change.MODIFY) in got
