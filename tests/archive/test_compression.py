"""Sniffing, decoding, encoding and digesting layer streams."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import os

import pytest
import zstandard

from cs_core.archive.compression import (
    Compression,
    DigestReader,
    compress_stream,
    decompress_stream,
    detect_compression,
)

PAYLOAD = os.urandom(300_000) + bytes(300_000)


def test_detect_by_magic() -> None:
    assert detect_compression(gzip.compress(b"x")) == Compression.GZIP
    assert detect_compression(bz2.compress(b"x")) == Compression.BZIP2
    assert detect_compression(lzma.compress(b"x")) == Compression.XZ
    assert detect_compression(zstandard.ZstdCompressor().compress(b"x")) == Compression.ZSTD
    assert detect_compression(b"plain tar") == Compression.NONE
    assert detect_compression(b"\x1f") == Compression.NONE
    assert [int(c) for c in Compression] == [0, 1, 2, 3, 4]  # Go's numbering in layers.json


@pytest.mark.parametrize("kind", list(Compression))
def test_round_trip_each_kind(kind: Compression) -> None:
    packed = io.BytesIO()
    writer = compress_stream(packed, kind)
    writer.write(PAYLOAD)
    writer.close()
    assert not packed.closed
    found, reader = decompress_stream(io.BytesIO(packed.getvalue()))  # type: ignore[arg-type]
    assert found == kind
    assert reader.read() == PAYLOAD


def test_multi_member_gzip_and_multi_frame_zstd() -> None:
    _, r = decompress_stream(io.BytesIO(gzip.compress(b"one") + gzip.compress(b"two")))  # type: ignore[arg-type]
    assert r.read() == b"onetwo"
    z = zstandard.ZstdCompressor()
    _, r = decompress_stream(io.BytesIO(z.compress(b"one") + z.compress(b"two")))  # type: ignore[arg-type]
    assert r.read() == b"onetwo"


def test_short_and_empty_streams() -> None:
    assert decompress_stream(io.BytesIO(b""))[1].read() == b""  # type: ignore[arg-type]
    assert decompress_stream(io.BytesIO(b"ab"))[1].read() == b"ab"  # type: ignore[arg-type]


def test_digest_reader_counts_and_hashes() -> None:
    packed = gzip.compress(PAYLOAD)
    raw = DigestReader(io.BytesIO(packed))
    _, plain_stream = decompress_stream(raw)  # type: ignore[arg-type]
    plain = DigestReader(plain_stream)
    assert plain.read() == PAYLOAD
    assert plain.size == len(PAYLOAD)
    assert plain.digest == "sha256:" + hashlib.sha256(PAYLOAD).hexdigest()
    assert raw.size == len(packed)
    assert raw.digest == "sha256:" + hashlib.sha256(packed).hexdigest()


def test_abandoned_plain_reader_stops_its_prefetch_thread() -> None:
    import gc
    import threading

    _, reader = decompress_stream(io.BytesIO(bytes(64 << 20)))  # type: ignore[arg-type]
    reader.read(10)
    del reader
    gc.collect()
    for _ in range(50):
        if not any(t.name == "cs-readahead" and t.is_alive() for t in threading.enumerate()):
            break
        threading.Event().wait(0.05)
    assert not any(t.name == "cs-readahead" and t.is_alive() for t in threading.enumerate())
