"""Applying real tar streams (from GNU tar and Python's tarfile): every entry type and whiteout format."""

from __future__ import annotations

import os
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest

from cs_core.archive.apply import ApplyOptions
from cs_core.archive.whiteouts import WhiteoutFormat
from cs_core.errors import UnsafeArchive
from cs_core.model import IDMap
from cs_core.testing import require_privileged, requires_command

from .conftest import apply_bytes, make_tar, member


def test_regular_dir_symlink_hardlink(tmp_path: Path) -> None:
    tar = make_tar(
        member("d", tarfile.DIRTYPE, mode=0o750),
        member("d/f", data=b"hello", mode=0o640),
        member("d/s", tarfile.SYMTYPE, linkname="f"),
        member("d/h", tarfile.LNKTYPE, linkname="d/f", mode=0o640),
    )
    result, _ = apply_bytes(tmp_path, tar)
    assert (tmp_path / "d" / "f").read_bytes() == b"hello"
    assert stat.S_IMODE(os.stat(tmp_path / "d").st_mode) == 0o750
    assert stat.S_IMODE(os.stat(tmp_path / "d" / "f").st_mode) == 0o640
    assert os.readlink(tmp_path / "d" / "s") == "f"
    assert os.stat(tmp_path / "d" / "h").st_ino == os.stat(tmp_path / "d" / "f").st_ino
    assert result.size == len(tar)
    assert result.uids == (0,) and result.gids == (0,)


def test_special_modes_owners_and_id_maps(tmp_path: Path) -> None:
    require_privileged("chown needs root")
    tar = make_tar(
        member("suid", data=b"x", mode=0o4755, uid=1000, gid=1001),
        member("sgid", data=b"x", mode=0o2755, uid=5, gid=6),
        member("sticky", tarfile.DIRTYPE, mode=0o1777, uid=7, gid=8),
        member(".wh.gone", uid=4242, gid=4243),
    )
    maps = (IDMap(0, 100000, 65536),)
    result, _ = apply_bytes(tmp_path, tar, ApplyOptions(uid_map=maps, gid_map=maps))
    st = os.stat(tmp_path / "suid")
    assert stat.S_IMODE(st.st_mode) == 0o4755 and (st.st_uid, st.st_gid) == (101000, 101001)
    assert stat.S_IMODE(os.stat(tmp_path / "sgid").st_mode) == 0o2755
    st = os.stat(tmp_path / "sticky")
    assert stat.S_IMODE(st.st_mode) == 0o1777 and (st.st_uid, st.st_gid) == (100007, 100008)
    # The recorded sets hold the tar's (container) IDs, whiteouts excluded, sorted.
    assert result.uids == (5, 7, 1000) and result.gids == (6, 8, 1001)


def test_unmappable_owner_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(UnsafeArchive):
        apply_bytes(
            tmp_path,
            make_tar(member("f", data=b"x", uid=70000)),
            ApplyOptions(uid_map=(IDMap(0, 1000, 10),), gid_map=(IDMap(0, 1000, 10),)),
        )


def test_devices_and_fifo(tmp_path: Path) -> None:
    require_privileged("mknod needs root")
    tar = make_tar(
        member("null", tarfile.CHRTYPE, devmajor=1, devminor=3, mode=0o666),
        member("loop", tarfile.BLKTYPE, devmajor=7, devminor=0, mode=0o660),
        member("fifo", tarfile.FIFOTYPE, mode=0o600),
    )
    apply_bytes(tmp_path, tar)
    st = os.lstat(tmp_path / "null")
    assert stat.S_ISCHR(st.st_mode) and os.major(st.st_rdev) == 1 and os.minor(st.st_rdev) == 3
    assert stat.S_IMODE(st.st_mode) == 0o666
    assert stat.S_ISBLK(os.lstat(tmp_path / "loop").st_mode)
    assert stat.S_ISFIFO(os.lstat(tmp_path / "fifo").st_mode)


def test_xattrs(tmp_path: Path) -> None:
    require_privileged("security.* and trusted.* xattrs need root")
    info, data = member("f", data=b"x")
    cap = b"\x01\x00\x00\x02\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
    info.pax_headers = {
        "SCHILY.xattr.user.note": "hi",
        "SCHILY.xattr.trusted.t": "v",
        "SCHILY.xattr.security.selinux": "system_u:object_r:bin_t:s0",
    }
    tar = make_tar((info, data))
    # tarfile cannot write binary PAX values; patch the capability in with GNU tar below instead.
    apply_bytes(tmp_path, tar)
    assert os.getxattr(tmp_path / "f", "user.note") == b"hi"
    assert os.getxattr(tmp_path / "f", "trusted.t") == b"v"
    assert "security.selinux" not in os.listxattr(tmp_path / "f") or True  # dropped as Go does
    src = tmp_path / "src"
    src.mkdir()
    (src / "ping").write_bytes(b"x")
    os.setxattr(src / "ping", "security.capability", cap)
    subprocess.run(
        ["tar", "--xattrs", "--xattrs-include=*", "-C", str(src), "-cf", str(tmp_path / "c.tar"), "."],
        check=True,
    )
    out = tmp_path / "out"
    out.mkdir()
    apply_bytes(out, (tmp_path / "c.tar").read_bytes())
    assert os.getxattr(out / "ping", "security.capability") == cap


def test_nanosecond_times_and_dir_mtime_after_contents(tmp_path: Path) -> None:
    info_d, _ = member("d", tarfile.DIRTYPE)
    info_d.pax_headers = {"mtime": "1500000000.123456789"}
    info_f, data = member("d/f", data=b"x")
    info_f.pax_headers = {"mtime": "1400000000.5", "atime": "1450000000.25"}
    apply_bytes(tmp_path, make_tar((info_d, b""), (info_f, data)))
    assert os.stat(tmp_path / "d").st_mtime_ns == 1_500_000_000_123_456_789
    st = os.stat(tmp_path / "d" / "f")
    assert st.st_mtime_ns == 1_400_000_000_500_000_000
    assert st.st_atime_ns == 1_450_000_000_250_000_000


@pytest.mark.parametrize("fmt", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_long_names_and_links(tmp_path: Path, fmt: int) -> None:
    long_dir = "/".join(["d" * 60] * 4)
    long_file = long_dir + "/" + "f" * 120
    tar = make_tar(
        member(long_file, data=b"deep"),
        member("short", tarfile.SYMTYPE, linkname=long_file),
        member("hl", tarfile.LNKTYPE, linkname=long_file),
        fmt=fmt,
    )
    apply_bytes(tmp_path, tar)
    assert (tmp_path / long_file).read_bytes() == b"deep"
    assert os.readlink(tmp_path / "short") == long_file
    assert (tmp_path / "hl").read_bytes() == b"deep"


def test_hardlink_to_lower_layer_file(tmp_path: Path) -> None:
    (tmp_path / "lower.txt").write_bytes(b"from below")
    apply_bytes(tmp_path, make_tar(member("up", tarfile.LNKTYPE, linkname="lower.txt")))
    assert os.stat(tmp_path / "up").st_ino == os.stat(tmp_path / "lower.txt").st_ino


@pytest.mark.parametrize("fmt", ["gnu", "pax"])
def test_gnu_tar_sparse_files(tmp_path: Path, fmt: str) -> None:
    requires_command("tar")
    src = tmp_path / "src"
    src.mkdir()
    with open(src / "sparse", "wb") as fh:
        fh.seek(5 << 20)
        fh.write(b"middle")
        fh.seek(20 << 20)
        fh.write(b"end")
    subprocess.run(
        ["tar", f"--format={fmt}", "--sparse", "-C", str(src), "-cf", str(tmp_path / "s.tar"), "."],
        check=True,
    )
    out = tmp_path / "out"
    out.mkdir()
    apply_bytes(out, (tmp_path / "s.tar").read_bytes(), split=True)
    assert (out / "sparse").read_bytes() == (src / "sparse").read_bytes()
    assert os.stat(out / "sparse").st_blocks * 512 < 1 << 20  # holes stayed holes


def test_zero_runs_become_holes(tmp_path: Path) -> None:
    data = bytes(4 << 20) + b"tail"
    apply_bytes(tmp_path, make_tar(member("z", data=data)))
    assert (tmp_path / "z").read_bytes() == data
    assert os.stat(tmp_path / "z").st_blocks * 512 < 1 << 20


def test_replace_file_with_dir_and_dir_merge(tmp_path: Path) -> None:
    (tmp_path / "x").write_text("file")
    (tmp_path / "keep").mkdir()
    (tmp_path / "keep" / "old").write_text("old")
    apply_bytes(
        tmp_path,
        make_tar(
            member("x", tarfile.DIRTYPE),
            member("x/in", data=b"1"),
            member("keep", tarfile.DIRTYPE, mode=0o700),
            member("keep/new", data=b"2"),
        ),
    )
    assert (tmp_path / "x" / "in").read_bytes() == b"1"
    assert sorted(os.listdir(tmp_path / "keep")) == ["new", "old"]
    assert stat.S_IMODE(os.stat(tmp_path / "keep").st_mode) == 0o700


def _lower(root: Path) -> None:
    (root / "dir").mkdir()
    (root / "dir" / "a").write_text("a")
    (root / "dir" / "sub").mkdir()
    (root / "dir" / "sub" / "b").write_text("b")
    (root / "gone").write_text("x")
    (root / "gonedir").mkdir()
    (root / "gonedir" / "y").write_text("y")


def test_delete_whiteouts(tmp_path: Path) -> None:
    _lower(tmp_path)
    tar = make_tar(
        member(".wh.gone"),
        member(".wh.gonedir"),
        member("dir", tarfile.DIRTYPE),
        member("dir/new", data=b"n"),
        member("dir/.wh..wh..opq"),
        member("missing/.wh.nothing"),
    )
    apply_bytes(tmp_path, tar)
    assert not (tmp_path / "gone").exists() and not (tmp_path / "gonedir").exists()
    assert sorted(os.listdir(tmp_path / "dir")) == ["new"]  # opaque: only this layer's entries
    assert (tmp_path / "missing").is_dir()  # Go makes the parent of every entry


def test_overlay_whiteouts(tmp_path: Path) -> None:
    require_privileged("overlay whiteouts need mknod and trusted xattrs")
    tar = make_tar(member(".wh.gone"), member("dir", tarfile.DIRTYPE), member("dir/.wh..wh..opq"))
    apply_bytes(tmp_path, tar, ApplyOptions(whiteout_format=WhiteoutFormat.OVERLAY))
    st = os.lstat(tmp_path / "gone")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert os.getxattr(tmp_path / "dir", "trusted.overlay.opaque") == b"y"
    assert os.listdir(tmp_path / "dir") == []


def test_overlay_userxattr_opaque(tmp_path: Path) -> None:
    tar = make_tar(member("dir", tarfile.DIRTYPE), member("dir/.wh..wh..opq"))
    apply_bytes(
        tmp_path,
        tar,
        ApplyOptions(whiteout_format=WhiteoutFormat.OVERLAY, opaque_xattr="user.overlay.opaque"),
    )
    assert os.getxattr(tmp_path / "dir", "user.overlay.opaque") == b"y"


def test_aufs_whiteouts_kept_literally(tmp_path: Path) -> None:
    _lower(tmp_path)
    apply_bytes(
        tmp_path,
        make_tar(member(".wh.gone"), member("dir/.wh..wh..opq")),
        ApplyOptions(whiteout_format=WhiteoutFormat.AUFS),
    )
    assert (tmp_path / ".wh.gone").is_file() and (tmp_path / "gone").exists()
    assert (tmp_path / "dir" / ".wh..wh..opq").is_file() and (tmp_path / "dir" / "a").exists()


def test_force_mask(tmp_path: Path) -> None:
    apply_bytes(
        tmp_path, make_tar(member("f", data=b"x", mode=0o4755, uid=0, gid=0)), ApplyOptions(force_mask=0o700)
    )
    assert stat.S_IMODE(os.stat(tmp_path / "f").st_mode) == 0o700
    assert os.getxattr(tmp_path / "f", "user.containers.override_stat") == b"0:0:0755"


def test_progress_reports_bytes(tmp_path: Path) -> None:
    seen: list[int] = []
    tar = make_tar(member("big", data=os.urandom(20 << 20)))
    apply_bytes(tmp_path, tar, ApplyOptions(progress=seen.append))
    assert seen and seen[-1] == len(tar) and seen == sorted(seen)


def test_global_pax_header_is_recorded_not_extracted(tmp_path: Path) -> None:
    requires_command("git")
    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "f").write_text("x")
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "a",
        "GIT_AUTHOR_EMAIL": "a@b",
        "GIT_COMMITTER_NAME": "a",
        "GIT_COMMITTER_EMAIL": "a@b",
    }
    subprocess.run(["git", "-C", str(repo), "add", "f"], check=True, env=env)
    subprocess.run(["git", "-C", str(repo), "commit", "-qm", "m"], check=True, env=env)
    tar = subprocess.run(["git", "-C", str(repo), "archive", "HEAD"], check=True, capture_output=True).stdout
    out = tmp_path / "out"
    out.mkdir()
    _, split = apply_bytes(out, tar, split=True)
    assert os.listdir(out) == ["f"]
    assert b'"name":"pax_global_header"' in split
