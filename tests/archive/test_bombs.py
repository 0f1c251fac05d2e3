"""Resource bombs and numbers Go would not parse: bounded work, bounded memory, clear errors."""

from __future__ import annotations

import gzip
import io
import subprocess
import sys
import tarfile
import textwrap
import time
from pathlib import Path

import pytest

from cs_core.archive.tarsplit import crc64
from cs_core.errors import UnsafeArchive
from cs_core.store import Store

from .conftest import apply_bytes, make_tar, member

_MIB = 1 << 20


def _pax_block(records: bytes) -> bytes:
    info = tarfile.TarInfo("PaxHeaders/f")
    info.type = tarfile.XHDTYPE
    info.size = len(records)
    return info.tobuf(tarfile.USTAR_FORMAT) + records + bytes(-len(records) % 512)


def _pax_record(key: str, value: bytes) -> bytes:
    body = f" {key}=".encode() + value + b"\n"
    n = len(body) + 1
    while len(str(n)) + len(body) != n:
        n = len(str(n)) + len(body)
    return str(n).encode() + body


def _write_pax_bomb(path: Path, count: int) -> None:
    """``count`` stacked 1 MiB PAX headers before one small file, gzip'd (~1 KB per MiB)."""
    one = _pax_block(_pax_record("comment", b"z" * (_MIB - 64)))
    with gzip.open(path, "wb", compresslevel=6) as gz:
        for _ in range(count):
            gz.write(one)
        gz.write(make_tar(member("f", data=b"x")))


_CHILD = textwrap.dedent("""
    import resource, sys
    from cs_core.errors import UnsafeArchive
    from cs_core.store import open_store
    store = open_store(graph_root=sys.argv[1], run_root=sys.argv[2], driver_name="vfs")
    try:
        with open(sys.argv[3], "rb") as blob:
            store.put_layer(diff=blob)
        outcome = "applied"
    except UnsafeArchive as exc:
        outcome = str(exc)
    store.shutdown(force=True)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024, len(store.layers()), outcome)
""")


def test_stacked_pax_headers_keep_memory_bounded(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.tar.gz"
    _write_pax_bomb(bomb, 200)
    assert bomb.stat().st_size < 400_000  # 200 MiB of headers in a few hundred KB
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, str(tmp_path / "g"), str(tmp_path / "r"), str(bomb)],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    peak_mib, layers, outcome = proc.stdout.split(" ", 2)
    # Before the cap every header's raw bytes were held (and copied) for one tar-split
    # segment: ~790 MB peak. Now the entry is refused after a few MiB.
    assert int(peak_mib) < 150, proc.stdout
    assert outcome.strip() == ("ApplyLayer stdout:  stderr: archive/tar: invalid tar header: "
                               "too many extended headers for one entry exit status 1")  # as Go's vfs
    assert layers == "0"


def test_one_big_pax_header_is_still_fine(tmp_path: Path) -> None:
    info, data = member("f", data=b"x")
    # Just under Go's 1 MiB limit for one PAX header, records and all.
    info.pax_headers = {"comment": "z" * (_MIB - 512), "path": "p" * 200}
    info.linkname = ""
    apply_bytes(tmp_path, make_tar((info, data)), split=True)
    assert (tmp_path / ("p" * 200)).read_bytes() == b"x"


def _sparse_1_0(real_size: int) -> bytes:
    """A PAX 1.0 sparse entry: 4 bytes of data at offset 0, the rest of ``real_size`` a hole."""
    sparse_map = b"1\n0\n4\n"
    info, _ = member("GNUSparseFile.0/big", data=b"")
    data = sparse_map + bytes(512 - len(sparse_map)) + b"abcd"
    info.size = len(data)
    info.pax_headers = {"GNU.sparse.major": "1", "GNU.sparse.minor": "0",
                        "GNU.sparse.name": "big", "GNU.sparse.realsize": str(real_size)}
    return make_tar((info, data))


@pytest.mark.timeout(120)
def test_sparse_entry_of_2_63_bytes_costs_what_its_stream_does(vfs_store: Store) -> None:
    start = time.monotonic()
    with pytest.raises(UnsafeArchive, match="File too large"):  # ext4: EFBIG on ftruncate
        vfs_store.put_layer(diff=io.BytesIO(_sparse_1_0((1 << 63) - 1)))
    # Before: the CRC of 2^63 zero bytes was computed byte by byte, with the store locked.
    assert time.monotonic() - start < 10
    assert vfs_store.layers() == []


def test_big_sparse_entry_is_applied_cheaply(vfs_store: Store) -> None:
    size = 1 << 40  # 1 TiB apparent size: ext4 holds it; the CRC covers the hole cheaply
    start = time.monotonic()
    layer = vfs_store.put_layer(diff=io.BytesIO(_sparse_1_0(size)))
    assert time.monotonic() - start < 10
    root = Path(vfs_store.mount(layer.id))
    try:
        st = (root / "big").stat()
        assert st.st_size == size and st.st_blocks < 64
        with open(root / "big", "rb") as f:
            assert f.read(8) == b"abcd\0\0\0\0"
    finally:
        vfs_store.unmount(layer.id)


_DIFF_CHILD = textwrap.dedent("""
    import resource, sys
    from cs_core.archive.tarsplit import crc64
    from cs_core.store import open_store

    class Sink:  # keeps the head and a running CRC, never the stream
        def __init__(self):
            self.n, self.crc, self.head = 0, 0, b""
        def write(self, b):
            if len(self.head) < 512:
                self.head += bytes(b[:512 - len(self.head)])
            self.n += len(b)
            self.crc = crc64(b, self.crc)
            return len(b)
        def flush(self):
            pass

    store = open_store(graph_root=sys.argv[1], run_root=sys.argv[2], driver_name=sys.argv[3])
    with open(sys.argv[4], "rb") as blob:
        layer = store.put_layer(diff=blob)
    sink = Sink()
    store.diff(None, layer.id, sink, compression=None)
    store.shutdown(force=True)
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024, sink.n, sink.crc,
          sink.head.hex())
""")


def test_big_sparse_entry_is_replayed_in_bounded_memory(tmp_path: Path, driver_name: str) -> None:
    # The replay emits the logical content (Go's tar-split does the same): 256 MiB of mostly
    # hole, read and CRC-checked chunk by chunk, never held whole.
    size = 256 * _MIB
    tar = _sparse_1_0(size)
    blob = tmp_path / "sparse.tar"
    blob.write_bytes(tar)
    proc = subprocess.run(
        [sys.executable, "-c", _DIFF_CHILD, str(tmp_path / "g"), str(tmp_path / "r"), driver_name,
         str(blob)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    peak_mib, n, crc, head = proc.stdout.split()
    assert int(peak_mib) < 150, proc.stdout
    # Expected: the tar's header segments, the file's logical content (not its sparse map,
    # which is in no segment, as in Go), then the tar's padding and end blocks.
    data_at = tar.index(b"1\n0\n4\n")
    tail = tar[data_at + 512 + 4:]
    want = crc64(tar[:data_at])
    want = crc64(b"abcd", want)
    zeros = bytes(_MIB)
    for _ in range(size // _MIB - 1):
        want = crc64(zeros, want)
    want = crc64(zeros[: _MIB - 4], want)
    want = crc64(tail, want)
    assert bytes.fromhex(head) == tar[:512]
    assert (int(n), int(crc)) == (data_at + size + len(tail), want)


@pytest.mark.parametrize("uid", [str(1 << 32), str(1 << 40), "4294967295"])
def test_pax_uid_beyond_uid_t_is_a_clear_error(vfs_store: Store, uid: str) -> None:
    info, data = member("f", data=b"x")
    info.pax_headers = {"uid": uid}
    with pytest.raises(UnsafeArchive, match="is not a valid uid:gid"):
        vfs_store.put_layer(diff=io.BytesIO(make_tar((info, data))))
    assert vfs_store.layers() == []


def test_cli_reports_huge_uid_in_one_line(tmp_path: Path) -> None:
    info, data = member("f", data=b"x")
    info.pax_headers = {"gid": str(1 << 33)}
    r = subprocess.run([sys.executable, "-m", "cs_core", "-g", str(tmp_path / "g"), "-R",
                        str(tmp_path / "r"), "-s", "vfs", "import-layer"],
                       input=make_tar((info, data)), capture_output=True, timeout=120)
    assert r.returncode == 1
    assert r.stderr.decode().splitlines()[-1] == (
        "'f': owner 0:8589934592 is not a valid uid:gid: unsafe or malformed archive")


@pytest.mark.parametrize(("key", "value"), [
    ("uid", "1_0"), ("uid", " 10"), ("uid", "10 "), ("gid", "\t7"), ("size", "1_0"),
    ("mtime", "1_600_000_000"), ("mtime", " 1600000000"), ("mtime", "1600000000.5_0"),
    ("atime", "١٦٠٠"),  # non-ASCII digits
])
def test_pax_numbers_are_parsed_as_strictly_as_go(tmp_path: Path, key: str, value: str) -> None:
    info, data = member("f", data=b"x")
    info.pax_headers = {key: value}
    with pytest.raises(UnsafeArchive, match="invalid tar header"):
        apply_bytes(tmp_path, make_tar((info, data)))


def test_pax_record_length_is_parsed_as_strictly_as_go(tmp_path: Path) -> None:
    good = _pax_record("uid", b"777")  # "11 uid=777\n"
    bad = good.replace(b"11 ", b"1_1 ", 1)  # "1_1" is 11 to Python's int(), junk to Go
    assert bad != good
    tail = make_tar(member("f", data=b"x"))
    ok = tmp_path / "ok"
    ok.mkdir()
    apply_bytes(ok, _pax_block(good) + tail)
    assert (ok / "f").lstat().st_uid == 777
    with pytest.raises(UnsafeArchive, match="invalid tar header"):
        apply_bytes(tmp_path, _pax_block(bad) + tail)


@pytest.mark.parametrize("mode", [b"0o00644\x00", b"+000644\x00", b"0_00644\x00", b"\t000644\x00"])
def test_octal_fields_are_parsed_as_strictly_as_go(tmp_path: Path, mode: bytes) -> None:
    blk = bytearray(make_tar(member("f", data=b"x"))[:512])
    blk[100:108] = mode
    blk[148:156] = b" " * 8
    blk[148:155] = f"{sum(blk):06o}\x00".encode()
    with pytest.raises(UnsafeArchive, match="invalid tar header"):
        apply_bytes(tmp_path, bytes(blk) + b"x" + bytes(511) + bytes(1024))


def test_valid_pax_numbers_still_parse(tmp_path: Path) -> None:
    info, data = member("f", data=b"x")
    info.pax_headers = {"uid": "+1000", "mtime": "-1.5", "atime": "1600000000.123456789123"}
    result, _ = apply_bytes(tmp_path, make_tar((info, data)))
    st = (tmp_path / "f").lstat()
    assert st.st_mtime_ns == -1_500_000_000
    assert st.st_atime_ns == 1_600_000_000_123_456_789
    assert result.uids == (1000,)
