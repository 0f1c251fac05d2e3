"""User-namespace ID maps: /etc/subuid lookups and the CLI's map flags.

Translation itself (``to_host``/``to_container``) lives with the tar engine, which needs it
without the rest of the core; it is re-exported here.

A map is a list of ``IDMap(container_id, host_id, size)`` ranges. Layer contents on disk are
owned by *host* IDs; tar streams carry *container* IDs.
"""

from __future__ import annotations

import grp
import os
import pwd
from collections.abc import Sequence
from itertools import pairwise
from typing import Literal

from cs_core.archive.idmap import to_container, to_host
from cs_core.errors import ConfigError, InvalidMappings, UsageError
from cs_core.model import IDMap

__all__ = ["is_contiguous", "maps_from_flags", "maps_from_subid", "parse_id_map",
           "read_subid_ranges", "representable_on_host", "subid_file", "to_container", "to_host"]

# Test knobs (like Go's _CONTAINERS_OVERLAY_DISABLE_IDMAP): tests point these at temporary
# files so they never have to edit the real /etc/subuid and /etc/subgid.
SUBUID_FILE_ENV = "_CS_CORE_SUBUID_FILE"
SUBGID_FILE_ENV = "_CS_CORE_SUBGID_FILE"

SubIDKind = Literal["uid", "gid"]


def subid_file(kind: SubIDKind) -> str:
    """/etc/subuid or /etc/subgid (unless a test points elsewhere)."""
    if kind == "uid":
        return os.environ.get(SUBUID_FILE_ENV) or "/etc/subuid"
    return os.environ.get(SUBGID_FILE_ENV) or "/etc/subgid"


def parse_id_map(text: str, name: str) -> list[IDMap]:
    """Parse ``cid:hid:size[:cid:hid:size...]`` (Go ``idtools.ParseIDMap``)."""
    if not text:
        return []
    maps: list[IDMap] = []
    for part in text.split(","):
        fields = part.split(":")
        if len(fields) % 3 or not all(f.isdigit() for f in fields):
            raise ConfigError(
                f'initializing ID mappings: {name} setting is malformed expected '
                f'["uint32:uint32:uint32"]: {part!r}'
            )
        for i in range(0, len(fields), 3):
            maps.append(IDMap(int(fields[i]), int(fields[i + 1]), int(fields[i + 2])))
    return maps


def is_contiguous(maps: Sequence[IDMap]) -> bool:
    """Go ``idtools.IsContiguous``: the ranges leave no hole, on the host nor in the container.

    Go sorts the caller's slice in place as a side effect; we leave it alone.
    """
    by_host = sorted(maps, key=lambda m: m.host_id)
    by_container = sorted(maps, key=lambda m: m.container_id)
    return all(b.host_id == a.host_id + a.size for a, b in pairwise(by_host)) and all(
        b.container_id == a.container_id + a.size for a, b in pairwise(by_container))


def representable_on_host(host_id: int, maps: Sequence[IDMap]) -> bool:
    return not maps or any(m.host_id <= host_id < m.host_id + m.size for m in maps)


def read_subid_ranges(name: str, kind: SubIDKind) -> list[tuple[int, int]]:
    """``(start, count)`` ranges of ``name`` (or its numeric ID) in /etc/subuid or /etc/subgid."""
    path = subid_file(kind)
    try:
        numeric = str(pwd.getpwnam(name).pw_uid) if kind == "uid" else str(grp.getgrnam(name).gr_gid)
    except KeyError:
        numeric = ""
    ranges = []
    try:
        with open(path) as fh:
            for line in fh:
                fields = line.strip().split(":")
                if len(fields) == 3 and fields[0] in (name, numeric) and fields[0]:
                    ranges.append((int(fields[1]), int(fields[2])))
    except FileNotFoundError:
        pass
    return ranges


def maps_from_subid(name: str, kind: SubIDKind) -> list[IDMap]:
    """Maps starting at container ID 0 covering every range of ``name`` (Go NewIDMappings)."""
    ranges = read_subid_ranges(name, kind)
    if not ranges:
        who = "user" if kind == "uid" else "group"
        raise InvalidMappings(f'no sub{kind} ranges found for {who} "{name}" in {subid_file(kind)}')
    maps, next_id = [], 0
    for start, count in ranges:
        maps.append(IDMap(next_id, start, count))
        next_id += count
    return maps


def maps_from_flags(
    uidmap: Sequence[str] = (), gidmap: Sequence[str] = (), subuidmap: str = "",
    subgidmap: str = "", hostuidmap: bool = False, hostgidmap: bool = False,
) -> tuple[list[IDMap], list[IDMap]]:
    """The CLI's ``--uidmap/--gidmap/--subuidmap/--subgidmap/--hostuidmap/--hostgidmap``.

    One of a uid/gid pair implies the other, as in Go's ``ParseIDMapping``.
    """
    uids = [m for text in uidmap for m in parse_id_map(text, "uidmap")]
    gids = [m for text in gidmap for m in parse_id_map(text, "gidmap")]
    if subuidmap and not subgidmap:
        subgidmap = subuidmap
    if subgidmap and not subuidmap:
        subuidmap = subgidmap
    if subuidmap:
        uids = maps_from_subid(subuidmap, "uid")
        gids = maps_from_subid(subgidmap, "gid")
    if uids and not gids:
        gids = list(uids)
    if gids and not uids:
        uids = list(gids)
    if (hostuidmap and uids) or (hostgidmap and gids):
        raise UsageError("host ID mapping cannot be combined with explicit ID maps")
    return uids, gids
