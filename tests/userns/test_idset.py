"""The interval arithmetic behind auto user namespaces (cs_core.userns.idset,
cs_core.userns.auto.allocate)."""

from __future__ import annotations

import pytest

from cs_core.errors import NoAvailableIDs
from cs_core.model import IDMap
from cs_core.userns.auto import allocate
from cs_core.userns.idset import IDSet


def test_intervals_are_sorted_merged_and_empty_ones_dropped() -> None:
    s = IDSet([(10, 20), (0, 5), (5, 7), (15, 30), (40, 40), (50, 45)])
    assert list(s) == [(0, 7), (10, 30)]
    assert s.size == 27
    assert IDSet() == IDSet([(3, 3)])
    assert IDSet().size == 0


def test_sets_from_maps() -> None:
    maps = [IDMap(0, 1000, 10), IDMap(10, 2000, 5), IDMap(15, 1010, 1)]
    assert list(IDSet.host_ids(maps)) == [(1000, 1011), (2000, 2005)]
    assert list(IDSet.container_ids(maps)) == [(0, 16)]


@pytest.mark.parametrize(("base", "cut", "left"), [
    ([(0, 10)], [(3, 5)], [(0, 3), (5, 10)]),  # a hole in the middle
    ([(0, 10)], [(0, 3)], [(3, 10)]),  # the start
    ([(0, 10)], [(8, 20)], [(0, 8)]),  # the end, and beyond it
    ([(0, 10)], [(-5, 15)], []),  # everything
    ([(0, 10)], [(10, 20)], [(0, 10)]),  # touching is not overlapping
    ([(0, 10), (20, 30)], [(5, 25)], [(0, 5), (25, 30)]),  # one cut across two intervals
    ([(0, 30)], [(2, 4), (6, 8), (28, 40)], [(0, 2), (4, 6), (8, 28)]),  # several cuts
    ([(0, 10)], [], [(0, 10)]),
    ([], [(0, 10)], []),
])
def test_subtract(base: list[tuple[int, int]], cut: list[tuple[int, int]],
                  left: list[tuple[int, int]]) -> None:
    assert list(IDSet(base).subtract(IDSet(cut))) == left


def test_union() -> None:
    assert list(IDSet([(0, 5)]).union(IDSet([(5, 8), (20, 21)]))) == [(0, 8), (20, 21)]


def test_find_available_takes_the_lowest_ids_across_intervals() -> None:
    s = IDSet([(100, 110), (200, 300)])
    assert list(s.find_available(10)) == [(100, 110)]
    assert list(s.find_available(15)) == [(100, 110), (200, 205)]
    assert list(s.find_available(110)) == [(100, 110), (200, 300)]
    assert s.find_available(0) == IDSet()


def test_find_available_fails_one_short() -> None:
    with pytest.raises(NoAvailableIDs) as info:
        IDSet([(100, 110), (200, 300)]).find_available(111)
    assert str(info.value) == "not enough unused IDs in user namespace"
    with pytest.raises(NoAvailableIDs):
        IDSet().find_available(1)


def test_zip_pairs_ids_in_order_across_uneven_intervals() -> None:
    hosts = IDSet([(1000, 1003), (2000, 2010)])
    containers = IDSet([(0, 5), (7, 10)])
    assert hosts.zip(containers) == [
        IDMap(0, 1000, 3), IDMap(3, 2000, 2), IDMap(7, 2002, 3),
    ]


def test_zip_stops_when_either_side_runs_out() -> None:
    assert IDSet([(1000, 1002)]).zip(IDSet([(0, 10)])) == [IDMap(0, 1000, 2)]
    assert IDSet([(1000, 2000)]).zip(IDSet([(0, 2)])) == [IDMap(0, 1000, 2)]
    assert IDSet().zip(IDSet([(0, 2)])) == []


# -- allocate (Go getAutoUserNSIDMappings) ------------------------------------------------------

AVAILABLE = IDSet([(100000, 165536)])


def test_allocate_first_free_range() -> None:
    uids, gids = allocate(1024, AVAILABLE, AVAILABLE, [], [])
    assert uids == gids == [IDMap(0, 100000, 1024)]


def test_allocate_skips_used_ranges_and_splits_across_holes() -> None:
    used = [IDMap(0, 100000, 1000), IDMap(0, 101500, 1000)]
    uids, gids = allocate(1024, AVAILABLE, AVAILABLE, used, [IDMap(0, 100000, 10)])
    # 500 IDs fit between the two used ranges; the rest comes after the second.
    assert uids == [IDMap(0, 101000, 500), IDMap(500, 102500, 524)]
    assert gids == [IDMap(0, 100010, 1024)]


def test_allocate_keeps_additional_mappings_out_of_the_automatic_part() -> None:
    extra = [IDMap(5, 50, 2)]  # container IDs 5-6 go to host 50-51
    uids, gids = allocate(10, AVAILABLE, AVAILABLE, [], [], extra, [])
    assert uids == [IDMap(0, 100000, 5), IDMap(7, 100005, 3), IDMap(5, 50, 2)]
    assert gids == [IDMap(0, 100000, 10)]
    # Host IDs of additional mappings are never handed out again.
    extra_host = [IDMap(1000, 100000, 4)]
    uids, _ = allocate(3, AVAILABLE, AVAILABLE, [], [], extra_host, [])
    assert uids == [IDMap(0, 100004, 3), IDMap(1000, 100000, 4)]


def test_allocate_runs_out() -> None:
    used = [IDMap(0, 100000, 65000)]
    assert allocate(536, AVAILABLE, AVAILABLE, used, used)[0] == [IDMap(0, 165000, 536)]
    with pytest.raises(NoAvailableIDs):
        allocate(537, AVAILABLE, AVAILABLE, used, used)
    with pytest.raises(NoAvailableIDs):  # the GIDs alone can run out too
        allocate(537, AVAILABLE, AVAILABLE, [], used)
