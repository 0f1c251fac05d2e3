"""``is_contiguous``: the test Go's canUseShifting applies to a container's maps."""

from __future__ import annotations

from cs_core.model import IDMap
from cs_core.userns.idmap import is_contiguous


def test_empty_and_single_ranges_are_contiguous() -> None:
    assert is_contiguous([])
    assert is_contiguous([IDMap(0, 100000, 65536)])
    assert is_contiguous([IDMap(5, 7, 1)])


def test_adjacent_ranges_in_any_order_are_contiguous() -> None:
    split = [IDMap(1000, 101000, 64536), IDMap(0, 100000, 1000)]
    assert is_contiguous(split)
    assert split[0].container_id == 1000  # unlike Go, the caller's list is not sorted


def test_a_hole_on_either_side_is_not_contiguous() -> None:
    assert not is_contiguous([IDMap(0, 100000, 10), IDMap(10, 200000, 10)])  # host hole
    assert not is_contiguous([IDMap(0, 100000, 10), IDMap(20, 100010, 10)])  # container hole
    # adjacent on the host but crossed in the container: sorted separately, both line up
    assert is_contiguous([IDMap(0, 100010, 10), IDMap(10, 100000, 10)])
