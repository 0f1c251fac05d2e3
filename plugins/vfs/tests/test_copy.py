"""vfs layer copies keep everything a layer can hold."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from cs_vfs.copy import copy_tree


def _build(src: Path) -> None:
    (src / "d" / "e").mkdir(parents=True)
    (src / "d" / "file").write_bytes(b"data" * 1000)
    os.link(src / "d" / "file", src / "hard")
    (src / "link").symlink_to("d/file")
    os.mkfifo(src / "fifo")
    with open(src / "sparse", "wb") as fh:
        fh.truncate(64 << 20)
        fh.seek(32 << 20)
        fh.write(b"middle")
    os.setxattr(src / "d" / "file", "user.note", b"kept")
    os.chown(src / "d" / "file", 1234, 5678)  # before chmod: chown clears setuid
    os.chmod(src / "d" / "file", 0o4751)
    os.utime(src / "d" / "file", ns=(1_000_000_001, 2_000_000_002))
    os.utime(src / "d", ns=(3_000_000_003, 4_000_000_004))


def test_copy_fidelity(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    _build(src)
    if os.geteuid() == 0:
        os.mknod(src / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    copy_tree(src, dst)
    f = os.lstat(dst / "d" / "file")
    assert (dst / "d" / "file").read_bytes() == b"data" * 1000
    assert stat.S_IMODE(f.st_mode) == 0o4751 and (f.st_uid, f.st_gid) == (1234, 5678)
    assert f.st_mtime_ns == 2_000_000_002
    assert os.getxattr(dst / "d" / "file", "user.note") == b"kept"
    assert os.lstat(dst / "hard").st_ino == f.st_ino  # still one inode
    assert os.readlink(dst / "link") == "d/file"
    assert stat.S_ISFIFO(os.lstat(dst / "fifo").st_mode)
    sparse = os.stat(dst / "sparse")
    assert sparse.st_size == 64 << 20 and sparse.st_blocks * 512 < 1 << 20  # holes kept
    with open(dst / "sparse", "rb") as fh:
        fh.seek(32 << 20)
        assert fh.read(6) == b"middle"
    assert os.lstat(dst / "d").st_mtime_ns == 4_000_000_004
    if os.geteuid() == 0:
        assert os.lstat(dst / "null").st_rdev == os.makedev(1, 3)


def test_reflink_on_btrfs(tmp_path: Path) -> None:
    from cs_core.testing import require_privileged, requires_command
    from cs_core.testing.loopfs import loop_filesystem

    require_privileged("loop-mounting btrfs needs root")
    requires_command("mkfs.btrfs")
    with loop_filesystem("btrfs", "512M", workdir=tmp_path) as mnt:
        src = mnt / "src"
        src.mkdir()
        (src / "big").write_bytes(os.urandom(1 << 20) * 64)
        os.sync()
        free_before = os.statvfs(mnt).f_bfree
        copy_tree(src, mnt / "dst")
        os.sync()
        # A reflink shares extents: copying 64 MiB costs (almost) no space.
        used = (free_before - os.statvfs(mnt).f_bfree) * os.statvfs(mnt).f_frsize
        assert used < 8 << 20
        assert (mnt / "dst" / "big").read_bytes() == (src / "big").read_bytes()


def test_sockets_read_only_dirs_and_symlink_owners(tmp_path: Path) -> None:
    import socket

    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "locked").mkdir(parents=True)
    (src / "locked" / "inside").write_text("still copied")
    os.chmod(src / "locked", 0o555)  # a read-only directory must still receive its files
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(src / "sock"))
    finally:
        sock.close()
    (src / "link").symlink_to("locked/inside")
    if os.geteuid() == 0:
        os.lchown(src / "link", 42, 43)
        os.setxattr(src / "link", "trusted.note", b"on a symlink", follow_symlinks=False)
        os.setxattr(src / "locked" / "inside", "security.capability",
                    bytes.fromhex("0100000200200000000000000000000000000000"))
    copy_tree(src, dst)
    assert stat.S_IMODE(os.lstat(dst / "locked").st_mode) == 0o555
    assert (dst / "locked" / "inside").read_text() == "still copied"
    assert stat.S_ISSOCK(os.lstat(dst / "sock").st_mode)
    assert os.readlink(dst / "link") == "locked/inside"
    if os.geteuid() == 0:
        link = os.lstat(dst / "link")
        assert (link.st_uid, link.st_gid) == (42, 43)
        assert os.getxattr(dst / "link", "trusted.note", follow_symlinks=False) == b"on a symlink"
        assert os.getxattr(dst / "locked" / "inside", "security.capability") == bytes.fromhex(
            "0100000200200000000000000000000000000000")


def test_hard_links_across_directories(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "a").mkdir(parents=True)
    (src / "b").mkdir()
    (src / "a" / "one").write_bytes(b"shared")
    os.link(src / "a" / "one", src / "b" / "two")
    os.link(src / "a" / "one", src / "three")
    copy_tree(src, dst)
    inodes = {os.lstat(dst / p).st_ino for p in ("a/one", "b/two", "three")}
    assert len(inodes) == 1 and os.lstat(dst / "three").st_nlink == 3
    assert os.lstat(dst / "three").st_ino != os.lstat(src / "three").st_ino


def test_deep_tree_under_a_low_fd_limit(tmp_path: Path) -> None:
    import resource

    src = tmp_path / "s"
    leaf = src.joinpath(*["d"] * 400)
    leaf.mkdir(parents=True)
    (leaf / "f").write_text("bottom")
    os.chmod(leaf, 0o500)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))  # far fewer fds than levels
    try:
        copy_tree(src, tmp_path / "t")
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    copied = (tmp_path / "t").joinpath(*["d"] * 400)
    assert (copied / "f").read_text() == "bottom"
    assert stat.S_IMODE(os.lstat(copied).st_mode) == 0o500
