"""Progress of image import and export: the running totals of :mod:`cs_core.progress`, per blob."""

from __future__ import annotations

from collections.abc import Callable

import attrs


@attrs.frozen
class BlobProgress:
    """``done`` of ``total`` bytes (``None``: unknown) of one blob; ``index`` counts from 0.

    ``done`` follows :mod:`cs_core.progress`: a running total of the blob's bytes as read
    (import: the blob as stored in the source, compressed or not) or written (export), with
    one event carrying the final total. A layer the store already holds gets that one event.
    """

    digest: str
    index: int
    count: int
    done: int
    total: int | None


ProgressCallback = Callable[[BlobProgress], None]
