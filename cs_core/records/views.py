"""Read-only mappings over a record store in raw mode: a lookup decodes one record only."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from cs_core.records.base import RecordStore

R = TypeVar("R")


class IdView(Mapping[str, R]):
    """``by_id`` in raw mode: a lookup decodes one record; iterating decodes them all."""

    def __init__(self, store: RecordStore[R]) -> None:
        self._store = store

    def __getitem__(self, key: str) -> R:
        record = self._store._raw_by_id(key) if isinstance(key, str) else None
        if record is None:
            raise KeyError(key)
        return record

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self._store._raw_by_id(key) is not None

    def __iter__(self) -> Iterator[str]:
        self._store._materialise()
        return iter(self._store._by_id)

    def __len__(self) -> int:
        self._store._materialise()
        return len(self._store._by_id)


class NameView(IdView[R]):
    """``by_name`` in raw mode."""

    def __getitem__(self, key: str) -> R:
        record = self._store._raw_by_name(key) if isinstance(key, str) else None
        if record is None:
            raise KeyError(key)
        return record

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self._store._raw_by_name(key) is not None

    def __iter__(self) -> Iterator[str]:
        self._store._materialise()
        return iter(self._store._by_name)

    def __len__(self) -> int:
        self._store._materialise()
        return len(self._store._by_name)
