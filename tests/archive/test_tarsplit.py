"""tar-split: what we record reassembles to the identical tar, and is byte-identical to Go's record."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from cs_core.archive.tarsplit import TarSplitWriter, go_json_string, iter_tar_split, reassemble
from cs_core.errors import UnsafeArchive
from cs_core.testing import go_cli_path, requires_command

from .conftest import apply_bytes, make_tar, member


def _source_tree(src: Path) -> None:
    (src / "etc").mkdir(parents=True)
    (src / "etc" / "conf").write_text("a=b\n")
    (src / "bin").mkdir()
    (src / "bin" / "tool").write_bytes(os.urandom(70_000))
    os.chmod(src / "bin" / "tool", 0o4755)
    os.symlink("../etc/conf", src / "bin" / "link")
    os.link(src / "etc" / "conf", src / "etc" / "hard")
    (src / "empty").write_bytes(b"")
    long_dir = src / ("L" * 90) / ("M" * 90)
    long_dir.mkdir(parents=True)
    (long_dir / ("n" * 110)).write_text("long")
    (src / "ünïcödé <&>").write_text("u")
    os.setxattr(src / "etc" / "conf", "user.k", b"v")


def _reassembled(root: Path, split: bytes) -> bytes:
    out = io.BytesIO()
    reassemble(io.BytesIO(split), lambda name: open(root / name.lstrip("/"), "rb"), out)  # noqa: SIM115
    return out.getvalue()


@pytest.mark.parametrize("fmt", ["gnu", "pax", "ustar", "posix"])
def test_gnu_tar_round_trip(tmp_path: Path, fmt: str) -> None:
    requires_command("tar")
    src = tmp_path / "src"
    _source_tree(src)
    if fmt == "ustar":
        shutil.rmtree(src / ("L" * 90))
        (src / "ünïcödé <&>").unlink()
    subprocess.run(
        ["tar", f"--format={fmt}", "--xattrs", "-C", str(src), "-cf", str(tmp_path / "x.tar"), "."],
        check=True,
    )
    tar = (tmp_path / "x.tar").read_bytes()
    out = tmp_path / "out"
    out.mkdir()
    result, split = apply_bytes(out, tar, split=True)
    assert result.size == len(tar)
    assert hashlib.sha256(_reassembled(out, split)).digest() == hashlib.sha256(tar).digest()


def test_python_tarfile_round_trip_with_trailing_junk(tmp_path: Path) -> None:
    tar = (
        make_tar(
            member("a", data=b"x" * 1000),
            member("d", tarfile.DIRTYPE),
            member("d/b", data=b"y"),
            fmt=tarfile.GNU_FORMAT,
        )
        + b"trailing junk after the end" * 50000
    )
    _, split = apply_bytes(tmp_path, tar, split=True)
    assert _reassembled(tmp_path, split) == tar


def test_stream_without_end_marker(tmp_path: Path) -> None:
    tar = make_tar(member("a", data=b"x" * 1000))
    cut = tar[:1536]  # header + data + padding, no zero blocks
    _, split = apply_bytes(tmp_path, cut, split=True)
    assert _reassembled(tmp_path, split) == cut


def test_checksum_mismatch_is_reported(tmp_path: Path) -> None:
    _, split = apply_bytes(tmp_path, make_tar(member("f", data=b"original")), split=True)
    (tmp_path / "f").write_bytes(b"tampered")
    with pytest.raises(UnsafeArchive, match='file integrity checksum failed for "f"'):
        _reassembled(tmp_path, split)


def test_duplicate_paths_rejected_when_reading() -> None:
    ts = io.BytesIO()
    w = TarSplitWriter(ts)
    w.add_file(b"a", 0, None)
    w.flush()
    data = ts.getvalue() + ts.getvalue()
    with pytest.raises(UnsafeArchive, match="duplicates"):
        list(iter_tar_split(io.BytesIO(data)))


def test_non_utf8_names_use_name_raw(tmp_path: Path) -> None:
    info, data = member("x", data=b"1")
    tar = make_tar((info, data), fmt=tarfile.GNU_FORMAT).replace(b"x\x00\x00\x00", b"\xff\xfe\x00\x00", 1)
    # Fix the checksum after patching the name.
    blk = bytearray(tar[:512])
    blk[148:156] = b" " * 8
    blk[148:155] = f"{sum(blk):06o}\x00".encode()
    tar = bytes(blk) + tar[512:]
    _, split = apply_bytes(tmp_path, tar, split=True)
    assert b'"name_raw":"//4="' in split
    assert _reassembled(tmp_path, split) == tar


def test_go_json_escaping() -> None:
    assert go_json_string('a<b>&"\\\n\x01\u2028é') == '"a\\u003cb\\u003e\\u0026\\"\\\\\\n\\u0001\\u2028é"'


def _go_tar_split(tmp_path: Path, tar_path: Path) -> bytes:
    graph, run = tmp_path / "g", tmp_path / "r"
    subprocess.run(
        [
            go_cli_path(),
            "-g",
            str(graph),
            "-R",
            str(run),
            "-s",
            "vfs",
            "import-layer",
            "-f",
            str(tar_path),
        ],
        check=True,
        capture_output=True,
    )
    [ts] = list((graph / "vfs-layers").glob("*.tar-split.gz"))
    return gzip.decompress(ts.read_bytes())


@pytest.mark.interop
@pytest.mark.parametrize("fmt", ["gnu", "pax"])
def test_tar_split_is_byte_identical_to_go(tmp_path: Path, fmt: str) -> None:
    requires_command("tar")
    go_cli_path()
    from cs_core.testing import require_privileged

    require_privileged("the Go CLI's vfs store chowns files")
    src = tmp_path / "src"
    _source_tree(src)
    subprocess.run(
        ["tar", f"--format={fmt}", "--xattrs", "-C", str(src), "-cf", str(tmp_path / "x.tar"), "."],
        check=True,
    )
    ours = tmp_path / "ours"
    ours.mkdir()
    _, split = apply_bytes(ours, (tmp_path / "x.tar").read_bytes(), split=True)
    assert split == _go_tar_split(tmp_path, tmp_path / "x.tar")


@pytest.mark.interop
def test_sparse_tar_split_matches_go(tmp_path: Path) -> None:
    # Go records a sparse member's expanded content (so neither side can replay it bit-exactly);
    # what matters for a shared store is that both write the same record.
    requires_command("tar")
    go_cli_path()
    from cs_core.testing import require_privileged

    require_privileged("the Go CLI's vfs store chowns files")
    src = tmp_path / "src"
    src.mkdir()
    with open(src / "sparse", "wb") as fh:
        fh.seek(5 << 20)
        fh.write(b"mid")
        fh.seek(9 << 20)
        fh.write(b"end")
    subprocess.run(["tar", "--format=pax", "--sparse", "-C", str(src), "-cf", str(tmp_path / "s.tar"), "."],
                   check=True)
    ours = tmp_path / "ours"
    ours.mkdir()
    _, split = apply_bytes(ours, (tmp_path / "s.tar").read_bytes(), split=True)
    assert split == _go_tar_split(tmp_path, tmp_path / "s.tar")


def test_segments_in_any_json_layout_are_read() -> None:
    canonical = b'{"type":2,"payload":"aGk=","position":0}\n'
    spaced = b'{ "position": 1, "payload": "aGk=", "type": 2 }\n'
    entries = list(iter_tar_split(io.BytesIO(canonical + spaced)))
    assert [(e.type, e.payload, e.position) for e in entries] == [(2, b"hi", 0), (2, b"hi", 1)]


class _FailingAfter(io.BytesIO):
    """A file that takes ``limit`` bytes, then fails as a full disk does."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def write(self, b: bytes) -> int:  # type: ignore[override]
        if self.tell() + len(b) > self.limit:
            raise OSError(28, "No space left on device")
        return super().write(b)


def _many_entries(writer: TarSplitWriter, n: int) -> None:
    for i in range(n):
        writer.add_file(b"d/f%07d" % i, 3, 7, segment=bytes(512))


def test_batches_written_by_the_thread_keep_their_order() -> None:
    # Enough entries for several 1 MiB batches handed to the writer thread.
    threaded, direct = io.BytesIO(), io.BytesIO()
    writer = TarSplitWriter(threaded)
    _many_entries(writer, 5_000)
    writer.flush()
    lines = threaded.getvalue().splitlines()
    assert len(lines) == 10_000
    assert [e.position for e in iter_tar_split(io.BytesIO(threaded.getvalue()))] == list(range(10_000))
    # The same entries, one small batch at a time (never threaded), give the same bytes.
    for i in range(0, 5_000, 100):
        small = TarSplitWriter(direct)
        small._pos = 2 * i
        for j in range(i, i + 100):
            small.add_file(b"d/f%07d" % j, 3, 7, segment=bytes(512))
        small.flush()
    assert direct.getvalue() == threaded.getvalue()


def test_a_failed_write_surfaces_and_nothing_follows_it() -> None:
    out = _FailingAfter(1 << 20)
    writer = TarSplitWriter(out)
    with pytest.raises(OSError, match="No space"):
        _many_entries(writer, 10_000)
        writer.flush()
    assert len(out.getvalue()) <= 1 << 20


def test_discard_stops_the_writes_where_they_are() -> None:
    full, cut = io.BytesIO(), io.BytesIO()
    complete = TarSplitWriter(full)
    _many_entries(complete, 5_000)
    complete.flush()
    discarded = TarSplitWriter(cut)
    _many_entries(discarded, 5_000)
    discarded.discard()
    size = len(cut.getvalue())
    discarded.add_file(b"late", 3, 7)  # the apply goes no further, but a late call writes nothing
    with pytest.raises(UnsafeArchive, match="discarded"):
        discarded.flush()
    assert len(cut.getvalue()) == size < len(full.getvalue())
    assert full.getvalue().startswith(cut.getvalue())
