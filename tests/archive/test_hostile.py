"""Hostile and malformed tar streams: each is rejected with UnsafeArchive or contained in the root.

The ``arena`` fixture checks after every test that nothing outside the layer root changed.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import tarfile
from pathlib import Path

import pytest
import zstandard

from cs_core.archive.apply import ApplyOptions, apply_tar
from cs_core.archive.compression import decompress_stream
from cs_core.archive.whiteouts import WhiteoutFormat
from cs_core.errors import UnsafeArchive
from cs_core.model import Change
from cs_core.testing import require_privileged

from .conftest import apply_bytes, make_tar, member


def _raw_header(
    name: bytes = b"f",
    size: bytes = b"0000000012\x00",
    typeflag: bytes = b"0",
    uid: bytes = b"0000000\x00",
    checksum_ok: bool = True,
) -> bytes:
    blk = bytearray(512)
    blk[0 : len(name)] = name
    blk[100:108] = b"0000644\x00"
    blk[108:116] = uid
    blk[116:124] = b"0000000\x00"
    blk[124 : 124 + len(size)] = size
    blk[136:148] = b"00000000000\x00"
    blk[148:156] = b" " * 8
    blk[156:157] = typeflag
    blk[257:265] = b"ustar\x0000"
    chk = sum(blk) + (0 if checksum_ok else 1)
    blk[148:155] = f"{chk:06o}\x00".encode()
    blk[155] = 0x20
    return bytes(blk)


def test_dotdot_name_is_rejected(arena: tuple[Path, Path]) -> None:
    root, _ = arena
    with pytest.raises(UnsafeArchive):
        apply_bytes(root, make_tar(member("../outside/secret", data=b"pwned")))


def test_dotdot_inside_name_is_rejected(arena: tuple[Path, Path]) -> None:
    root, _ = arena
    with pytest.raises(UnsafeArchive):
        apply_bytes(root, make_tar(member("a/../../outside/x", data=b"pwned")))


def test_absolute_name_lands_inside_root(arena: tuple[Path, Path]) -> None:
    root, outside = arena
    apply_bytes(root, make_tar(member(str(outside / "secret"), data=b"pwned")))
    assert (root / str(outside / "secret").lstrip("/")).read_bytes() == b"pwned"


def test_nul_in_pax_path_is_rejected(arena: tuple[Path, Path]) -> None:
    root, _ = arena
    info, data = member("x", data=b"1")
    info.pax_headers = {"path": "a\x00b"}
    with pytest.raises(UnsafeArchive):
        apply_bytes(root, make_tar((info, data)))


def test_overlong_component_is_rejected(arena: tuple[Path, Path]) -> None:
    root, _ = arena
    with pytest.raises(UnsafeArchive):
        apply_bytes(root, make_tar(member("d/" + "x" * 300, data=b"1")))


def test_overlong_path_is_rejected(arena: tuple[Path, Path]) -> None:
    root, _ = arena
    name = "/".join(["y" * 200] * 30) + "/f"
    with pytest.raises(UnsafeArchive):
        apply_bytes(root, make_tar(member(name, data=b"1")))


def test_write_through_dangling_absolute_symlink_is_rejected(arena: tuple[Path, Path]) -> None:
    root, outside = arena
    # Inside the root the link dangles (as in Go's chroot): an error, never a write outside.
    with pytest.raises(UnsafeArchive):
        apply_bytes(
            root,
            make_tar(
                member("evil", tarfile.SYMTYPE, linkname=str(outside)), member("evil/secret", data=b"pwned")
            ),
        )


def test_write_through_absolute_symlink_stays_inside(arena: tuple[Path, Path]) -> None:
    root, outside = arena
    (root / str(outside).lstrip("/")).mkdir(parents=True)
    tar = make_tar(
        member("evil", tarfile.SYMTYPE, linkname=str(outside)), member("evil/secret", data=b"pwned")
    )
    apply_bytes(root, tar)
    assert os.readlink(root / "evil") == str(outside)
    assert (root / str(outside).lstrip("/") / "secret").read_bytes() == b"pwned"


def test_symlinks_climbing_above_the_root_are_kept_as_they_are(arena: tuple[Path, Path]) -> None:
    # Real images have these (Go applies them); they are never followed out of the root.
    root, _ = arena
    apply_bytes(root, make_tar(
        member("etc", tarfile.DIRTYPE),
        member("etc/group", tarfile.SYMTYPE, linkname="../../../../../../etc/group"),
        member("dangle-up", tarfile.SYMTYPE, linkname="../../../../x"),
        member("evil", tarfile.SYMTYPE, linkname="../outside"),
    ))
    assert os.readlink(root / "etc" / "group") == "../../../../../../etc/group"
    assert os.readlink(root / "dangle-up") == "../../../../x"
    assert os.readlink(root / "evil") == "../outside"


def test_writes_through_climbing_symlinks_stay_inside(arena: tuple[Path, Path]) -> None:
    root, outside = arena
    (root / "outside").mkdir()  # where "../outside" leads once ".." stops at the root
    (root / str(outside).lstrip("/")).mkdir(parents=True)
    apply_bytes(root, make_tar(
        member("evil", tarfile.SYMTYPE, linkname="../outside"),
        member("evil/secret", data=b"pwned"),
        member("evil/dir/file", data=b"pwned too"),
        member("deep", tarfile.SYMTYPE, linkname="../../../../../../../.." + str(outside)),
        member("deep/new", data=b"x"),
        member("evil/.wh.dir"),
        member("h", tarfile.LNKTYPE, linkname="evil/secret"),
    ))
    assert (root / "outside" / "secret").read_bytes() == b"pwned"
    assert not (root / "outside" / "dir").exists()
    assert (root / str(outside).lstrip("/") / "new").read_bytes() == b"x"
    assert (root / "h").read_bytes() == b"pwned"
    # The arena fixture checks that the real outside/ (secret, dir/file) is untouched.


def test_write_through_dangling_climbing_symlink_is_rejected(arena: tuple[Path, Path]) -> None:
    root, _ = arena
    tar = make_tar(member("dangle-up", tarfile.SYMTYPE, linkname="../../../../x"),
                   member("dangle-up/file", data=b"pwned"))
    with pytest.raises(UnsafeArchive, match="resolving 'dangle-up' inside the layer"):
        apply_bytes(root, tar)
    assert not (root / "x").exists()


def test_climbing_symlink_replaced_by_a_file_is_not_written_through(arena: tuple[Path, Path]) -> None:
    root, outside = arena
    link = os.path.relpath(outside / "secret", root / "etc")  # really leads outside from etc/
    apply_bytes(root, make_tar(
        member("etc", tarfile.DIRTYPE),
        member("etc/passwd", tarfile.SYMTYPE, linkname=link),
        member("etc/passwd", data=b"root:x:0:0::/:/bin/sh\n"),
    ))
    assert not (root / "etc" / "passwd").is_symlink()
    assert (root / "etc" / "passwd").read_bytes() == b"root:x:0:0::/:/bin/sh\n"


def test_symlink_chain_stays_inside(arena: tuple[Path, Path]) -> None:
    root, outside = arena
    (root / str(outside).lstrip("/")).mkdir(parents=True)
    tar = make_tar(
        member("l2", tarfile.SYMTYPE, linkname=str(outside)),
        member("l1", tarfile.SYMTYPE, linkname="l2"),
        member("l1/dir/file", data=b"pwned"),
    )
    apply_bytes(root, tar)
    assert (root / str(outside).lstrip("/") / "dir" / "file").read_bytes() == b"pwned"


def test_symlinked_parent_from_lower_layer_stays_inside(arena: tuple[Path, Path]) -> None:
    root, outside = arena
    (root / str(outside).lstrip("/")).mkdir(parents=True)
    os.symlink(outside, root / "lower")  # left by a lower layer
    os.symlink("../../../../../../../../../" + str(outside), root / "lower2")
    apply_bytes(root, make_tar(member("lower/secret", data=b"pwned"), member("lower2/dir/file", data=b"x")))
    assert (root / str(outside).lstrip("/") / "dir" / "file").read_bytes() == b"x"
    assert (root / str(outside).lstrip("/") / "secret").read_bytes() == b"pwned"


def test_symlink_replaced_by_file_is_not_written_through(arena: tuple[Path, Path]) -> None:
    root, outside = arena
    tar = make_tar(
        member("evil", tarfile.SYMTYPE, linkname=str(outside / "secret")), member("evil", data=b"pwned")
    )
    apply_bytes(root, tar)
    assert (root / "evil").read_bytes() == b"pwned"


def test_hardlink_escape_is_rejected(arena: tuple[Path, Path]) -> None:
    root, _ = arena
    with pytest.raises(UnsafeArchive):
        apply_bytes(root, make_tar(member("h", tarfile.LNKTYPE, linkname="../outside/secret")))


def test_hardlink_to_absolute_path_resolves_in_root(arena: tuple[Path, Path]) -> None:
    root, outside = arena
    with pytest.raises(UnsafeArchive):  # no such file inside the root
        apply_bytes(root, make_tar(member("h", tarfile.LNKTYPE, linkname=str(outside / "secret"))))


def test_hardlink_through_symlinked_parent_stays_inside(arena: tuple[Path, Path]) -> None:
    root, outside = arena
    tar = make_tar(
        member("l", tarfile.SYMTYPE, linkname=str(outside)), member("h", tarfile.LNKTYPE, linkname="l/secret")
    )
    with pytest.raises(UnsafeArchive):
        apply_bytes(root, tar)


def test_hardlink_to_symlink_is_a_symlink(arena: tuple[Path, Path]) -> None:
    root, outside = arena
    tar = make_tar(
        member("s", tarfile.SYMTYPE, linkname=str(outside / "secret")),
        member("h", tarfile.LNKTYPE, linkname="s"),
    )
    apply_bytes(root, tar)
    assert os.path.islink(root / "h")


@pytest.mark.parametrize("name", [".wh.", ".wh..", "d/.wh..", ".wh..."])
def test_degenerate_whiteouts_are_rejected(arena: tuple[Path, Path], name: str) -> None:
    root, _ = arena
    (root / "d").mkdir()
    (root / "d" / "keep").write_text("x")
    with pytest.raises(UnsafeArchive):
        apply_bytes(root, make_tar(member(name)))
    assert (root / "d" / "keep").exists()


def test_whiteout_through_symlink_stays_inside(arena: tuple[Path, Path]) -> None:
    root, outside = arena
    mirror = root / str(outside).lstrip("/")
    (mirror / "dir").mkdir(parents=True)
    (mirror / "secret").write_text("inside")
    tar = make_tar(
        member("l", tarfile.SYMTYPE, linkname=str(outside)),
        member("l/.wh.secret"),
        member("l/dir/.wh..wh..opq"),
    )
    apply_bytes(root, tar)
    assert (outside / "secret").exists()
    assert not (mirror / "secret").exists()


def test_opaque_whiteout_through_lower_symlink_stays_inside(arena: tuple[Path, Path]) -> None:
    root, outside = arena
    mirror = root / str(outside).lstrip("/")
    (mirror / "dir").mkdir(parents=True)
    os.symlink(outside, root / "l")
    apply_bytes(root, make_tar(member("l/.wh..wh..opq"), member("l/.wh.dir")))
    assert not (mirror / "dir").exists()
    assert (outside / "dir" / "file").exists()


def test_overlay_whiteout_device_smuggled_in_delete_format(arena: tuple[Path, Path]) -> None:
    root, _ = arena
    require_privileged("mknod needs root")
    tar = make_tar(member("wo", tarfile.CHRTYPE, devmajor=0, devminor=0))
    with pytest.raises(UnsafeArchive):
        apply_bytes(root, tar, ApplyOptions(allow_devices=False))
    # With devices allowed it is an ordinary (inert) device node inside the root.
    apply_bytes(root, tar)
    assert os.stat(root / "wo", follow_symlinks=False).st_rdev == 0


@pytest.mark.parametrize("kind", [tarfile.CHRTYPE, tarfile.BLKTYPE])
def test_devices_refused_when_not_allowed(arena: tuple[Path, Path], kind: bytes) -> None:
    root, _ = arena
    with pytest.raises(UnsafeArchive):
        apply_bytes(
            root, make_tar(member("dev", kind, devmajor=1, devminor=3)), ApplyOptions(allow_devices=False)
        )
    assert not (root / "dev").exists()


def test_overlay_private_xattrs_are_dropped(arena: tuple[Path, Path]) -> None:
    root, _ = arena
    require_privileged("trusted.* xattrs need root")
    info, _ = member("d", tarfile.DIRTYPE)
    info.pax_headers = {"SCHILY.xattr.trusted.overlay.redirect": "/etc", "SCHILY.xattr.user.ok": "1"}
    apply_bytes(root, make_tar((info, b"")), ApplyOptions(whiteout_format=WhiteoutFormat.OVERLAY))
    assert "trusted.overlay.redirect" not in os.listxattr(root / "d")
    assert os.getxattr(root / "d", "user.ok") == b"1"


def test_huge_pax_record_is_rejected(arena: tuple[Path, Path]) -> None:
    root, _ = arena
    info, data = member("x", data=b"1")
    info.pax_headers = {"comment": "z" * (2 << 20)}
    with pytest.raises(UnsafeArchive):
        apply_bytes(root, make_tar((info, data)))


def test_huge_sparse_map_is_rejected(arena: tuple[Path, Path]) -> None:
    root, _ = arena
    info, data = member("x", data=b"")
    info.pax_headers = {
        "GNU.sparse.major": "0",
        "GNU.sparse.minor": "1",
        "GNU.sparse.numblocks": "100000000",
        "GNU.sparse.map": "0,0",
        "GNU.sparse.size": "10",
    }
    with pytest.raises(UnsafeArchive):
        apply_bytes(root, make_tar((info, data)))


def test_sparse_map_beyond_size_is_rejected(arena: tuple[Path, Path]) -> None:
    root, _ = arena
    info, data = member("x", data=b"abcd")
    info.pax_headers = {
        "GNU.sparse.major": "0",
        "GNU.sparse.minor": "1",
        "GNU.sparse.numblocks": "1",
        "GNU.sparse.map": "100,4",
        "GNU.sparse.size": "10",
    }
    with pytest.raises(UnsafeArchive):
        apply_bytes(root, make_tar((info, data)))


def test_size_that_lies_is_rejected(arena: tuple[Path, Path]) -> None:
    root, _ = arena
    data = make_tar(member("x", data=b"a" * 5000))
    with pytest.raises(UnsafeArchive):
        apply_bytes(root, data[:2048])


def test_negative_size_is_rejected(arena: tuple[Path, Path]) -> None:
    root, _ = arena
    neg = b"\xff" * 12  # base-256 -1
    with pytest.raises(UnsafeArchive):
        apply_bytes(root, _raw_header(size=neg) + bytes(1024))


def test_negative_uid_is_rejected(arena: tuple[Path, Path]) -> None:
    root, _ = arena
    with pytest.raises(UnsafeArchive):
        apply_bytes(root, _raw_header(size=b"00000000000\x00", uid=b"\xff" * 8) + bytes(1024))


def test_bad_checksum_is_rejected(arena: tuple[Path, Path]) -> None:
    root, _ = arena
    with pytest.raises(UnsafeArchive):
        apply_bytes(root, _raw_header(size=b"00000000000\x00", checksum_ok=False) + bytes(1024))


def test_zero_block_then_garbage_is_rejected(arena: tuple[Path, Path]) -> None:
    root, _ = arena
    with pytest.raises(UnsafeArchive):
        apply_bytes(root, bytes(512) + b"\x01" * 512)


def test_replacing_the_root_is_rejected(arena: tuple[Path, Path]) -> None:
    root, _ = arena
    with pytest.raises(UnsafeArchive):
        apply_bytes(root, make_tar(member("./", tarfile.SYMTYPE, linkname="/")))


def _compressors() -> dict[str, object]:
    return {
        "gzip": gzip.compress,
        "zstd": lambda b: zstandard.ZstdCompressor().compress(b),
        "bzip2": bz2.compress,
        "xz": lzma.compress,
    }


@pytest.mark.parametrize("kind", ["gzip", "zstd", "bzip2", "xz", "plain"])
def test_junk_streams_are_rejected(arena: tuple[Path, Path], kind: str) -> None:
    root, _ = arena
    magic = {
        "gzip": b"\x1f\x8b\x08",
        "zstd": b"\x28\xb5\x2f\xfd",
        "bzip2": b"BZh",
        "xz": b"\xfd7zXZ\x00",
        "plain": b"",
    }[kind]
    junk = magic + os.urandom(4096)
    with pytest.raises(UnsafeArchive):
        _, plain = decompress_stream(io.BytesIO(junk))  # type: ignore[arg-type]
        apply_tar(root, plain, ApplyOptions())


@pytest.mark.parametrize("kind", ["gzip", "zstd", "bzip2", "xz"])
def test_truncated_compressed_streams_are_rejected(arena: tuple[Path, Path], kind: str) -> None:
    root, _ = arena
    tar = make_tar(member("big", data=os.urandom(200_000)))
    packed = _compressors()[kind](tar)  # type: ignore[operator]
    with pytest.raises(UnsafeArchive):
        _, plain = decompress_stream(io.BytesIO(packed[: len(packed) // 2]))  # type: ignore[arg-type]
        apply_tar(root, plain, ApplyOptions())


@pytest.mark.parametrize("kind", ["gzip", "zstd"])
def test_junk_after_compressed_stream_is_rejected(arena: tuple[Path, Path], kind: str) -> None:
    root, _ = arena
    packed = _compressors()[kind](make_tar(member("f", data=b"x")))  # type: ignore[operator]
    with pytest.raises(UnsafeArchive):
        _, plain = decompress_stream(io.BytesIO(packed + b"\x01garbage" * 100))  # type: ignore[arg-type]
        apply_tar(root, plain, ApplyOptions())


def test_unknown_entry_type_is_rejected(arena: tuple[Path, Path]) -> None:
    root, _ = arena
    with pytest.raises(UnsafeArchive):
        apply_bytes(root, _raw_header(size=b"00000000000\x00", typeflag=b"Z") + bytes(1024))


@pytest.mark.parametrize("kind", ["bzip2", "xz"])
def test_junk_after_bzip2_or_xz_stream_is_ignored(arena: tuple[Path, Path], kind: str) -> None:
    # Python's bz2/lzma readers stop at trailing bytes that are not another stream (Go would
    # complain); the junk is never extracted, so this is contained, not an escape.
    root, _ = arena
    packed = _compressors()[kind](make_tar(member("f", data=b"x")))  # type: ignore[operator]
    _, plain = decompress_stream(io.BytesIO(packed + b"\x01garbage" * 100))  # type: ignore[arg-type]
    apply_tar(root, plain, ApplyOptions())
    assert sorted(os.listdir(root)) == ["f"]


def test_very_deep_nesting_is_compared_and_removed(arena: tuple[Path, Path]) -> None:
    from cs_core.archive.changes import changes_dirs

    root, _ = arena
    deep = "/".join(["a"] * 1500)
    apply_bytes(root, make_tar(member(deep + "/f", data=b"x")))  # parents made without recursion
    assert (root / deep / "f").read_bytes() == b"x"
    changes = changes_dirs(root, None)  # iterative: no recursion limit
    assert len(changes) == 1501 and changes[-1].path == "/" + deep + "/f"
    assert {c.kind for c in changes} == {Change.ADD}
    apply_bytes(root, make_tar(member(".wh.a")))  # removal is iterative too
    assert not (root / "a").exists()
