"""Sniff, decompress and compress layer streams (gzip, zstd, bzip2, xz or plain).

Go's numbering of compression kinds is what ``layers.json`` records, so the enum keeps it.
Decoder failures (junk, truncation) surface as :class:`cs_core.errors.ArchiveFormatError` (an
``UnsafeArchive``) so callers see one error type for every malformed input; a truncated stream
reads ``unexpected EOF``, as Go's decoders say.
"""

from __future__ import annotations

import bz2
import contextlib
import enum
import functools
import hashlib
import io
import lzma
import zlib
from collections.abc import Callable
from typing import Any, BinaryIO, cast

from cs_core.archive.readahead import ReadAhead
from cs_core.archive.readahead import readinto as _readinto
from cs_core.archive.zstdframes import CheckedZstdInput
from cs_core.errors import ArchiveFormatError, UnsafeArchive, Unsupported


# The compiled codecs are optional at run time: the single-file zipapp cannot carry compiled
# modules, so it falls back to the standard library's gzip and refuses zstd with a clear error.
# They are imported on first use: an uncompressed diff or import never pays for loading them.
@functools.cache
def _zstandard() -> Any:
    """The zstandard module, or None."""
    try:
        import zstandard
    except ImportError:  # pragma: no cover - exercised by the zipapp
        return None
    return zstandard


@functools.cache
def _gzip_codec() -> tuple[Any, Any, type[BaseException]]:
    """(isal's C gzip reader or None, the GzipFile class, the inflate error)."""
    try:
        from isal.igzip import IGzipFile
        from isal.isal_zlib import IsalError, _GzipReader
    except ImportError:  # pragma: no cover - exercised by the zipapp
        import gzip

        return None, gzip.GzipFile, zlib.error
    return _GzipReader, IGzipFile, cast(type[BaseException], IsalError)


@functools.cache
def _decode_errors() -> tuple[type[BaseException], ...]:
    """What the decoders raise on junk or truncated input."""
    zstandard = _zstandard()
    return (OSError, EOFError, ValueError, lzma.LZMAError, zlib.error, _gzip_codec()[2],
            *((zstandard.ZstdError,) if zstandard is not None else ()))


def _decode_error(kind: Compression, exc: BaseException) -> ArchiveFormatError:
    if isinstance(exc, EOFError):  # "Compressed file ended before the end-of-stream marker"
        return ArchiveFormatError("unexpected EOF")
    text = str(exc)  # Go: "gzip: invalid header", "xz: ..."
    return ArchiveFormatError(text if text.startswith(kind.label) else f"{kind.label}: {text}")


def _require_zstandard() -> Any:
    zstandard = _zstandard()
    if zstandard is None:
        raise Unsupported("zstd compression needs the zstandard package, which is not installed: "
                          "pip install zstandard")
    return zstandard
#: Go reads this many bytes before deciding; we only need the longest magic.
SNIFF_BYTES = 10
#: Compressed bytes per read of the input: few Python-level reads (each goes through the
#: digest and progress wrappers), each hashed with the GIL released.
_GZIP_READ = 4 << 20
_ZSTD_READ = 1 << 20


class Compression(enum.IntEnum):
    """Compression kinds, numbered as Go's ``archive.Compression``."""

    NONE = 0
    BZIP2 = 1
    GZIP = 2
    XZ = 3
    ZSTD = 4

    @property
    def label(self) -> str:
        return ("uncompressed", "bzip2", "gzip", "xz", "zstd")[self.value]


_MAGIC: tuple[tuple[Compression, bytes], ...] = (
    (Compression.BZIP2, b"BZh"),
    (Compression.GZIP, b"\x1f\x8b\x08"),
    (Compression.XZ, b"\xfd7zXZ\x00"),
    (Compression.ZSTD, b"\x28\xb5\x2f\xfd"),
)


def detect_compression(head: bytes) -> Compression:
    """The compression whose magic number ``head`` starts with (NONE if none matches)."""
    for kind, magic in _MAGIC:
        if head.startswith(magic):
            return kind
    return Compression.NONE


class _PrefixedReader(io.RawIOBase):
    """Replays sniffed bytes, then reads on from the underlying stream."""

    def __init__(self, head: bytes, stream: Any) -> None:
        self._head = memoryview(head)
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        view = memoryview(b).cast("B")
        if self._head:
            n = min(len(view), len(self._head))
            view[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        return _readinto(self._stream, view)


class _GuardedReader(io.RawIOBase):
    """Turns decoder exceptions into UnsafeArchive with the kind of stream in the message."""

    def __init__(self, inner: Any, kind: Compression) -> None:
        self._inner = inner
        self._kind = kind

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        try:
            return _readinto(self._inner, memoryview(b).cast("B"))
        except UnsafeArchive:
            raise
        except _decode_errors() as exc:
            raise _decode_error(self._kind, exc) from None

    def close(self) -> None:
        if not self.closed:
            with contextlib.suppress(Exception):  # a failing decoder must not mask the real error
                self._inner.close()
        super().close()


def _open_decoder(kind: Compression, raw: _PrefixedReader) -> Any:
    if kind == Compression.GZIP:
        # isal's C reader: multi-member like Go's, bounded output per readinto (no bomb can
        # make one call allocate more than the block it fills), the GIL released while inflating.
        reader, gzip_file, _ = _gzip_codec()
        return gzip_file(fileobj=raw, mode="rb") if reader is None else reader(raw, _GZIP_READ)
    if kind == Compression.ZSTD:
        return _require_zstandard().ZstdDecompressor().stream_reader(
            CheckedZstdInput(raw), read_size=_ZSTD_READ, read_across_frames=True, closefd=False  # type: ignore[arg-type]
        )
    if kind == Compression.BZIP2:
        return bz2.BZ2File(raw, "rb")
    if kind == Compression.XZ:
        return lzma.LZMAFile(raw, "rb")  # type: ignore[arg-type]
    return raw


def decompress_stream(stream: BinaryIO) -> tuple[Compression, BinaryIO]:
    """Sniff ``stream``'s first bytes (without losing them) and return a decoded reader.

    A thread reads ``stream`` (so a :class:`DigestReader` given as ``stream`` hashes in it),
    decodes, and hashes the decoded bytes for a :class:`DigestReader` wrapped around the
    result; decoder errors reach the reader's caller as :class:`ArchiveFormatError`. Close
    the result (or read it to the end) to end the thread.
    """
    head = bytearray()
    while len(head) < SNIFF_BYTES:
        chunk = stream.read(SNIFF_BYTES - len(head))
        if not chunk:
            break
        head += chunk
    kind = detect_compression(bytes(head))
    raw = _PrefixedReader(bytes(head), stream)
    if kind == Compression.NONE:
        # The bytes handed out are the ones ``stream`` hashes: Go's second digest is that one.
        alias = stream if isinstance(stream, DigestReader) else None
        return kind, ReadAhead(raw, source_digest=alias)  # type: ignore[return-value]
    try:
        decoder = _open_decoder(kind, raw)
    except _decode_errors() as exc:
        raise _decode_error(kind, exc) from None
    guarded = _GuardedReader(decoder, kind)
    decoded = DigestReader(guarded)  # read, and so hashed, in the read-ahead thread
    return kind, ReadAhead(decoded, source_digest=decoded, close_inner=guarded)  # type: ignore[return-value]


class DigestReader(io.RawIOBase):
    """Passes reads through while hashing them: ``digest`` is ``sha256:<hex>``, ``size`` bytes."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self._hash = hashlib.sha256()
        self._size = 0
        # Uncompressed input: the bytes are the ones the outer reader already hashes, so the
        # second digest (Go computes both) is that one, without hashing everything twice.
        self._alias: DigestReader | None = getattr(stream, "source_digest", None)

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        view = memoryview(b).cast("B")
        n = _readinto(self._stream, view)
        if n and self._alias is None:
            self._hash.update(view[:n])
            self._size += n
        return n

    @property
    def size(self) -> int:
        """Bytes read so far."""
        return self._alias.size if self._alias is not None else self._size

    @property
    def digest(self) -> str:
        if self._alias is not None:
            return self._alias.digest
        return "sha256:" + self._hash.hexdigest()


class _CodecWriter(io.RawIOBase):
    """A writer over a one-shot compressor object (``compress``/``flush``); keeps ``out`` open."""

    def __init__(self, out: BinaryIO, compressor: Any) -> None:
        self._out = out
        self._compressor = compressor

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        data = self._compressor.compress(b)
        if data:
            self._out.write(data)
        return len(memoryview(b))

    def close(self) -> None:
        if not self.closed:
            tail = self._compressor.flush()
            if tail:
                self._out.write(tail)
            self._out.flush()
        super().close()


class _PlainWriter(io.RawIOBase):
    def __init__(self, out: BinaryIO) -> None:
        self._out = out

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        self._out.write(b)
        return len(memoryview(b))

    def close(self) -> None:
        if not self.closed:
            self._out.flush()
        super().close()


class _ZstdWriter(io.RawIOBase):
    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._writer = _require_zstandard().ZstdCompressor(level=3).stream_writer(out, closefd=False)

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        self._writer.write(b)
        return len(memoryview(b))

    def close(self) -> None:
        if not self.closed:
            self._writer.close()  # type: ignore[no-untyped-call]
            self._out.flush()
        super().close()


class _GzipWriter(io.RawIOBase):
    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._writer = _gzip_codec()[1](
            fileobj=out, mode="wb", compresslevel=2, mtime=0
        )

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        self._writer.write(b)  # type: ignore[no-untyped-call]
        return len(memoryview(b))

    def close(self) -> None:
        if not self.closed:
            self._writer.close()  # type: ignore[no-untyped-call]  # leaves a handed-in fileobj open
            self._out.flush()
        super().close()


_WRITERS: dict[Compression, Callable[[BinaryIO], io.RawIOBase]] = {
    Compression.NONE: _PlainWriter,
    Compression.GZIP: _GzipWriter,
    Compression.ZSTD: _ZstdWriter,
    Compression.BZIP2: lambda out: _CodecWriter(out, bz2.BZ2Compressor(9)),
    Compression.XZ: lambda out: _CodecWriter(out, lzma.LZMACompressor(format=lzma.FORMAT_XZ)),
}


def compress_stream(out: BinaryIO, compression: Compression) -> BinaryIO:
    """A writer compressing into ``out``; ``close()`` finishes the stream and leaves ``out`` open."""
    return io.BufferedWriter(_WRITERS[Compression(compression)](out), 1 << 20)  # type: ignore[return-value]
