"""Container <-> host ID translation through ``IDMap`` ranges (Go ``RawToHost``/``RawToContainer``)."""

from __future__ import annotations

from collections.abc import Sequence

from cs_core.errors import InvalidMappings
from cs_core.model import IDMap


def to_host(cid: int, maps: Sequence[IDMap]) -> int:
    """The host ID for container ID ``cid``; identity without maps."""
    if not maps:
        return cid
    for m in maps:
        if m.container_id <= cid < m.container_id + m.size:
            return m.host_id + cid - m.container_id
    raise InvalidMappings(f"container ID {cid} cannot be mapped to a host ID")


def to_container(hid: int, maps: Sequence[IDMap]) -> int:
    """The container ID for host ID ``hid``; identity without maps."""
    if not maps:
        return hid
    for m in maps:
        if m.host_id <= hid < m.host_id + m.size:
            return m.container_id + hid - m.host_id
    raise InvalidMappings(f"host ID {hid} cannot be mapped to a container ID")
