"""The read-ahead thread behind decompress_stream: errors on real broken streams, and its end.

Every compressed kind decodes (and hashes) in a thread; what the caller sees must be what a
synchronous decoder would give it: the bytes before a fault, then the fault as one clear
ArchiveFormatError, on every later read too; and the thread must be gone when the caller sees
the end, the error, or closes the reader.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import zstandard

from cs_core.archive.apply import ApplyOptions, apply_tar
from cs_core.archive.compression import Compression, DigestReader, decompress_stream
from cs_core.archive.ingest import extract_stream
from cs_core.archive.readahead import ReadAhead
from cs_core.errors import ArchiveFormatError, UnsafeArchive

from .conftest import make_tar, member

# Incompressible then compressible: several read-ahead blocks, stored and compressed blocks.
PAYLOAD = os.urandom(3 << 20) + b"layer data " * 300_000

PACK: dict[Compression, Callable[[bytes], bytes]] = {
    Compression.GZIP: lambda b: gzip.compress(b, 6),
    Compression.ZSTD: lambda b: zstandard.ZstdCompressor(level=3, write_checksum=True).compress(b),
    Compression.BZIP2: bz2.compress,
    Compression.XZ: lzma.compress,
}


def _live() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "cs-readahead" and t.is_alive()]


@pytest.fixture(autouse=True)
def _no_thread_left() -> None:
    assert not _live()


def _read_all(reader: io.RawIOBase, got: bytearray) -> None:
    while chunk := reader.read(1 << 16):
        got += chunk


def _corrupt(kind: Compression, packed: bytes) -> bytes:
    if kind == Compression.ZSTD:  # zstd only notices through its checksum: damage the content
        return packed[:-4] + bytes(b ^ 0xFF for b in packed[-4:])
    mid = len(packed) // 2
    return packed[:mid] + bytes(b ^ 0x5A for b in packed[mid:mid + 64]) + packed[mid + 64:]


@pytest.mark.parametrize("kind", list(PACK))
def test_corrupt_stream_fails_clearly_every_time(kind: Compression) -> None:
    found, reader = decompress_stream(io.BytesIO(_corrupt(kind, PACK[kind](PAYLOAD))))  # type: ignore[arg-type]
    assert found == kind
    got = bytearray()
    with pytest.raises(ArchiveFormatError) as first:
        _read_all(reader, got)  # type: ignore[arg-type]
    assert str(first.value).startswith(kind.label), str(first.value)
    assert not _live()  # gone by the time the caller sees the error
    with pytest.raises(ArchiveFormatError):  # a retry sees the error again, not a clean end
        reader.read(1)
    reader.close()


@pytest.mark.parametrize("kind", list(PACK))
def test_truncated_stream_is_unexpected_eof(kind: Compression) -> None:
    packed = PACK[kind](PAYLOAD)
    _, reader = decompress_stream(io.BytesIO(packed[: len(packed) * 2 // 3]))  # type: ignore[arg-type]
    got = bytearray()
    with pytest.raises(ArchiveFormatError, match=r"^unexpected EOF$"):
        _read_all(reader, got)  # type: ignore[arg-type]
    assert got and PAYLOAD.startswith(got)  # the bytes before the fault, in order
    assert not _live()


@pytest.mark.parametrize("kind", list(PACK))
def test_both_digests_of_every_kind(kind: Compression) -> None:
    packed = PACK[kind](PAYLOAD)
    raw = DigestReader(io.BytesIO(packed))
    _, decoded = decompress_stream(raw)  # type: ignore[arg-type]
    plain = DigestReader(decoded)
    got = bytearray()
    _read_all(plain, got)
    assert bytes(got) == PAYLOAD
    assert (plain.size, plain.digest) == (len(PAYLOAD), "sha256:" + hashlib.sha256(PAYLOAD).hexdigest())
    assert (raw.size, raw.digest) == (len(packed), "sha256:" + hashlib.sha256(packed).hexdigest())
    assert not _live()


@pytest.mark.parametrize("kind", [Compression.NONE, *PACK])
def test_close_mid_stream_ends_the_thread(kind: Compression) -> None:
    data = PAYLOAD * 4 if kind == Compression.NONE else PACK[kind](PAYLOAD * 4)
    _, reader = decompress_stream(io.BytesIO(data))  # type: ignore[arg-type]
    assert reader.read(10) == PAYLOAD[:10]
    reader.close()
    assert not _live()  # joined by close(), not merely told to stop
    with pytest.raises(ValueError, match="closed"):  # not a wait for a block that never comes
        reader.read(10)


def test_error_from_the_source_stream_reaches_the_caller() -> None:
    class Failing(io.RawIOBase):
        def __init__(self) -> None:
            self._left = io.BytesIO(PACK[Compression.GZIP](PAYLOAD)[:500_000])

        def readable(self) -> bool:
            return True

        def readinto(self, b: memoryview) -> int:  # type: ignore[override]
            n = self._left.readinto(b)
            if not n:
                raise KeyboardInterrupt  # any BaseException, not only decoder errors
            return n

    _, reader = decompress_stream(Failing())  # type: ignore[arg-type]
    with pytest.raises(KeyboardInterrupt):
        reader.read()
    assert not _live()


def test_interrupted_caller_can_close_and_the_thread_ends() -> None:
    """SIGINT while the caller waits for a block: KeyboardInterrupt there, and close() ends it."""
    release = threading.Event()

    class Stalled(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def readinto(self, b: memoryview) -> int:  # type: ignore[override]
            release.wait(10)
            return 0

    main = threading.get_ident()
    # Python's own SIGINT handler, whatever an earlier test (an in-process CLI run) left there.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    reader = ReadAhead(Stalled())
    timer = threading.Timer(0.2, lambda: signal.pthread_kill(main, signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            reader.read(1)
    finally:
        timer.join()
        release.set()
        reader.close()
        signal.signal(signal.SIGINT, previous)
    assert not _live()


def test_truncated_gzip_layer_import_fails_and_leaves_no_thread(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    layer = make_tar(member("a", data=os.urandom(2 << 20)), member("b", data=b"x" * (4 << 20)))
    packed = gzip.compress(layer)[: -(1 << 10)]
    with pytest.raises(ArchiveFormatError, match="unexpected EOF"):
        extract_stream(io.BytesIO(packed), io.BytesIO(),  # type: ignore[arg-type]
                       lambda plain, split: apply_tar(root, plain, ApplyOptions(), split))
    assert not _live()


@pytest.mark.parametrize("kind", [Compression.NONE, Compression.GZIP])
def test_layer_refused_by_the_extractor_leaves_no_thread(tmp_path: Path, kind: Compression) -> None:
    # The stream is fine, our side refuses it (a path out of the root) before reading it all:
    # the import's own end must end the read-ahead, not the exception's garbage collection.
    root = tmp_path / "root"
    root.mkdir()
    layer = make_tar(member("../evil", data=b"x"), member("big", data=os.urandom(8 << 20)))
    packed = layer if kind == Compression.NONE else PACK[kind](layer)
    with pytest.raises(UnsafeArchive) as failure:
        extract_stream(io.BytesIO(packed), io.BytesIO(),  # type: ignore[arg-type]
                       lambda plain, split: apply_tar(root, plain, ApplyOptions(), split))
    assert not _live()
    del failure


def _skippable(data: bytes) -> bytes:
    return (0x184D2A5E).to_bytes(4, "little") + len(data).to_bytes(4, "little") + data


def _zstd_streams() -> dict[str, bytes]:
    """Frames as the encoders write them: with and without content size and checksum,
    streamed (no size known up front), several frames, skippable frames between them."""
    plain = zstandard.ZstdCompressor(level=3)
    streamed = io.BytesIO()
    with zstandard.ZstdCompressor(level=1, write_checksum=True).stream_writer(streamed, closefd=False) as w:
        for i in range(0, len(PAYLOAD), 100_000):
            w.write(PAYLOAD[i:i + 100_000])
    return {
        "sized": plain.compress(PAYLOAD),
        "checksum, no size": zstandard.ZstdCompressor(write_checksum=True, write_content_size=False)
        .compress(PAYLOAD),
        "streamed": streamed.getvalue(),
        "two frames, skippable between and after": plain.compress(PAYLOAD[:1000]) + _skippable(b"toc" * 999)
        + plain.compress(PAYLOAD[1000:]) + _skippable(b""),
        "empty frame first": plain.compress(b"") + plain.compress(PAYLOAD),
    }


@pytest.mark.parametrize("name", list(_zstd_streams()))
def test_zstd_streams_of_every_shape_decode_whole(name: str) -> None:
    packed = _zstd_streams()[name]
    _, reader = decompress_stream(io.BytesIO(packed))  # type: ignore[arg-type]
    assert reader.read() == PAYLOAD


@pytest.mark.parametrize("name", list(_zstd_streams()))
def test_zstd_cut_anywhere_is_unexpected_eof(name: str) -> None:
    """zstandard itself ends quietly where its input stops inside a frame; Go says unexpected EOF."""
    packed = _zstd_streams()[name]
    for cut in (5, len(packed) // 2, len(packed) - 5, len(packed) - 1):  # each inside a frame
        _, reader = decompress_stream(io.BytesIO(packed[:cut]))  # type: ignore[arg-type]
        with pytest.raises(ArchiveFormatError, match=r"^unexpected EOF$"):
            reader.read()
        assert not _live()


def test_zstd_layer_cut_at_an_entry_boundary_is_not_a_shorter_layer(tmp_path: Path) -> None:
    """Each entry its own frame: cut after the first one, the rest is still a valid tar stream."""
    first = make_tar(member("a", data=b"a" * 10_000))[:-1024]  # without the end-of-archive blocks
    rest = make_tar(member("b", data=b"b" * 10_000))
    z = zstandard.ZstdCompressor()
    cut = z.compress(first) + z.compress(rest)[:-3]
    root = tmp_path / "root"
    root.mkdir()
    with pytest.raises(ArchiveFormatError, match="unexpected EOF"):
        extract_stream(io.BytesIO(cut), io.BytesIO(),  # type: ignore[arg-type]
                       lambda plain, split: apply_tar(root, plain, ApplyOptions(), split))
