"""Sets of integer IDs as sorted, disjoint half-open intervals (Go ``idset.go``).

Auto user namespaces are interval arithmetic: the host IDs the subordinate-ID files give us,
minus those other containers' maps already use, cut down to the first ``n``, then paired
("zipped") with the container IDs that need a host ID. Keeping that arithmetic here, free of
files and locks, lets its edge cases be tested on their own.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from cs_core.errors import NoAvailableIDs
from cs_core.model import IDMap

Interval = tuple[int, int]  # [start, end)


class IDSet:
    """An immutable set of IDs. Empty and backwards intervals are ignored."""

    __slots__ = ("_intervals",)

    def __init__(self, intervals: Iterable[Interval] = ()) -> None:
        merged: list[Interval] = []
        for start, end in sorted(i for i in intervals if i[1] > i[0]):
            if merged and start <= merged[-1][1]:  # overlapping or adjacent: one interval
                if end > merged[-1][1]:
                    merged[-1] = (merged[-1][0], end)
            else:
                merged.append((start, end))
        self._intervals: tuple[Interval, ...] = tuple(merged)

    @classmethod
    def host_ids(cls, maps: Sequence[IDMap]) -> IDSet:
        return cls((m.host_id, m.host_id + m.size) for m in maps)

    @classmethod
    def container_ids(cls, maps: Sequence[IDMap]) -> IDSet:
        return cls((m.container_id, m.container_id + m.size) for m in maps)

    def __iter__(self) -> Iterator[Interval]:
        return iter(self._intervals)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IDSet) and self._intervals == other._intervals

    def __hash__(self) -> int:
        return hash(self._intervals)

    def __repr__(self) -> str:
        return f"IDSet({list(self._intervals)!r})"

    @property
    def size(self) -> int:
        return sum(end - start for start, end in self._intervals)

    def union(self, other: IDSet) -> IDSet:
        return IDSet((*self._intervals, *other._intervals))

    def subtract(self, other: IDSet) -> IDSet:
        out: list[Interval] = []
        cuts = other._intervals
        j = 0
        for start, end in self._intervals:
            # Both lists are sorted: cuts ending before this interval can never matter again.
            while j < len(cuts) and cuts[j][1] <= start:
                j += 1
            k = j
            while k < len(cuts) and cuts[k][0] < end:
                cut_start, cut_end = cuts[k]
                if cut_start > start:
                    out.append((start, cut_start))
                start = max(start, cut_end)
                k += 1
            if start < end:
                out.append((start, end))
        return IDSet(out)

    def find_available(self, n: int) -> IDSet:
        """The lowest ``n`` IDs of the set; NoAvailableIDs if it has fewer."""
        taken: list[Interval] = []
        for start, end in self._intervals:
            if n <= 0:
                break
            stop = min(end, start + n)
            taken.append((start, stop))
            n -= stop - start
        if n > 0:
            raise NoAvailableIDs()
        return IDSet(taken)

    def zip(self, container: IDSet) -> list[IDMap]:
        """Pair this set's IDs (host side) in order with ``container``'s, as ID map entries.

        Stops when either side runs out, as Go does.
        """
        out: list[IDMap] = []
        hosts, conts = list(self._intervals), list(container._intervals)
        h = c = 0
        while h < len(hosts) and c < len(conts):
            (h_start, h_end), (c_start, c_end) = hosts[h], conts[c]
            n = min(h_end - h_start, c_end - c_start)
            out.append(IDMap(c_start, h_start, n))
            hosts[h], conts[c] = (h_start + n, h_end), (c_start + n, c_end)
            if h_start + n == h_end:
                h += 1
            if c_start + n == c_end:
                c += 1
        return out
