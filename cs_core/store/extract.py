"""Reading a layer's diff stream once: decompressed, hashed both ways, extracted by the
driver, its tar-split recorded; what it measured goes into the layer's record."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, BinaryIO

from cs_core import recordclass as attrs  # attrs' API subset, without attrs' import cost
from cs_core.model import ApplyResult, Layer
from cs_core.progress import CountingReader, Progress

if TYPE_CHECKING:
    from cs_core.archive.tarsplit import TarSplitWriter
    from cs_core.store.options import LayerOptions

#: Extracts a plain tar stream, recording its tar-split through the writer.
Extract = Callable[[BinaryIO, "TarSplitWriter"], ApplyResult]


@attrs.define
class Measured:
    """What reading a layer's stream told us, for its record."""

    compressed_digest: str
    compressed_size: int
    uncompressed_digest: str
    uncompressed_size: int
    compression: int
    result: ApplyResult

    def record(self, layer: Layer, options: LayerOptions) -> None:
        # A caller that knows the digests (a pull) wins, as in Go.
        layer.compressed_digest = (options.original_digest
                                   if options.original_digest.startswith("sha256:")
                                   else self.compressed_digest)
        layer.compressed_size = self.compressed_size
        layer.uncompressed_digest = (options.uncompressed_digest
                                     if options.uncompressed_digest.startswith("sha256:")
                                     else self.uncompressed_digest)
        layer.uncompressed_size = self.uncompressed_size
        layer.compression = self.compression
        layer.uidset = sorted(set(self.result.uids))
        layer.gidset = sorted(set(self.result.gids))


def extract_stream(stream: BinaryIO, tar_split_out: IO[bytes], extract: Extract,
                   progress: Progress | None = None) -> Measured:
    """Decompress ``stream``, hash it both ways, and let ``extract`` apply it while its
    tar-split goes (gzip-compressed) to ``tar_split_out``; ``progress`` gets running totals
    of the bytes read from ``stream`` (:mod:`cs_core.progress`)."""
    from cs_core.archive.compression import DigestReader, decompress_stream
    from cs_core.archive.tarsplit import TarSplitWriter

    counted = CountingReader(stream, progress)
    raw = DigestReader(counted)
    compression, plain_stream = decompress_stream(raw)  # type: ignore[arg-type]
    plain = DigestReader(plain_stream)
    with gzip.GzipFile(fileobj=tar_split_out, mode="wb", compresslevel=1, mtime=0) as gz:
        result = extract(plain, TarSplitWriter(gz))  # type: ignore[arg-type]
    counted.finish()
    return Measured(raw.digest, raw.size, plain.digest, plain.size, int(compression), result)
