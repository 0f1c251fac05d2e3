"""Read-only mappings over a record store in raw mode: a lookup decodes one record only."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TypeVar

R = TypeVar("R")


class RawView(Mapping[str, R]):
    """``by_id`` or ``by_name`` in raw mode: a lookup decodes one record (``lookup``);
    iterating or sizing leaves raw mode (``decoded`` materialises and returns the full map)."""

    def __init__(self, lookup: Callable[[str], R | None],
                 decoded: Callable[[], Mapping[str, R]]) -> None:
        self._lookup = lookup
        self._decoded = decoded

    def __getitem__(self, key: str) -> R:
        record = self._lookup(key) if isinstance(key, str) else None
        if record is None:
            raise KeyError(key)
        return record

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self._lookup(key) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(self._decoded())

    def __len__(self) -> int:
        return len(self._decoded())
