"""Reading a layer's diff stream once: decompressed, hashed both ways, extracted by a driver,
its tar-split recorded; what it measured is the :class:`IngestReport` a layer record takes.

Every way content enters a layer reads its stream here (the store's locked and unlocked
imports, and ``cs_core.drivers.staging.TarDiffer`` for staged layers), so the digests, sizes
and owner sets a record gets are computed one way.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, BinaryIO

from cs_core import recordclass
from cs_core.model import ApplyResult
from cs_core.progress import CountingReader, Progress

if TYPE_CHECKING:
    from cs_core.archive.tarsplit import TarSplitWriter

#: Extracts a plain tar stream, recording its tar-split through the writer.
Extract = Callable[[BinaryIO, "TarSplitWriter"], ApplyResult]


@recordclass.define
class IngestReport:
    """What a layer's content measured, as its record keeps it (Go's ``DriverWithDifferOutput``
    fields the store copies): digests and sizes of the stream as given (``compressed_*``) and
    decompressed, the compression found, the owners the content names."""

    compressed_digest: str = ""
    compressed_size: int = 0
    uncompressed_digest: str = ""
    uncompressed_size: int = 0
    compression: int = 0
    uids: list[int] = recordclass.field(factory=list)
    gids: list[int] = recordclass.field(factory=list)


def extract_stream(stream: BinaryIO, tar_split_out: IO[bytes], extract: Extract,
                   progress: Progress | None = None) -> IngestReport:
    """Decompress ``stream``, hash it both ways, and let ``extract`` apply it while its
    tar-split goes (gzip-compressed) to ``tar_split_out``; ``progress`` gets running totals
    of the bytes read from ``stream`` (:mod:`cs_core.progress`)."""
    # Imported here: gzip and the decompressors are not needed to start the CLI.
    import gzip

    from cs_core.archive.compression import DigestReader, decompress_stream
    from cs_core.archive.tarsplit import TarSplitWriter

    counted = CountingReader(stream, progress)
    raw = DigestReader(counted)
    compression, plain_stream = decompress_stream(raw)  # type: ignore[arg-type]
    plain = DigestReader(plain_stream)
    # Closing the decoded stream ends its read-ahead thread also when extraction fails.
    with contextlib.closing(plain_stream), \
            gzip.GzipFile(fileobj=tar_split_out, mode="wb", compresslevel=1, mtime=0) as gz:
        result = extract(plain, TarSplitWriter(gz))  # type: ignore[arg-type]
    counted.finish()
    return IngestReport(raw.digest, raw.size, plain.digest, plain.size, int(compression),
                        sorted(set(result.uids)), sorted(set(result.gids)))
