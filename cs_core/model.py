"""The records the store keeps: layers, images, containers, ID maps and mount counts.

Field names are Pythonic; ``codec.py`` owns the mapping to the Go library's JSON keys. Fields
that Go does not persist (mount point, mount count, read-only) are marked ``persist=False`` in
their metadata so the codec skips them.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from typing import Any

from cs_core import recordclass

#: Field metadata key: (json key, omitempty). Read by ``codec.py``.
JSON = "cs_json"


def _field(key: str, *, omitempty: bool = True, persist: bool = True, **kw: Any) -> Any:
    return recordclass.field(metadata={JSON: (key, omitempty, persist)}, **kw)


def utcnow() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC)


ZERO_TIME = _dt.datetime(1, 1, 1, tzinfo=_dt.UTC)


@recordclass.frozen
class IDMap:
    """One contiguous range of a user-namespace mapping (Go ``idtools.IDMap``)."""

    container_id: int = _field("container_id", omitempty=False)
    host_id: int = _field("host_id", omitempty=False)
    size: int = _field("size", omitempty=False)


#: A layer's (UID maps, GID maps); both empty for host IDs.
IDMapPair = tuple[Sequence[IDMap], Sequence[IDMap]]
NO_MAPS: IDMapPair = ((), ())


@recordclass.define
class Layer:
    id: str = _field("id", omitempty=False)
    names: list[str] = _field("names", factory=list)
    parent: str = _field("parent", default="")
    metadata: str = _field("metadata", default="")
    mount_label: str = _field("mountlabel", default="")
    created: _dt.datetime = _field("created", omitempty=False, factory=utcnow)
    compressed_digest: str = _field("compressed-diff-digest", default="")
    compressed_size: int = _field("compressed-size", default=0)
    uncompressed_digest: str = _field("diff-digest", default="")
    toc_digest: str = _field("toc-digest", default="")
    uncompressed_size: int = _field("diff-size", default=0)
    compression: int = _field("compression", default=0)
    uidset: list[int] = _field("uidset", factory=list)
    gidset: list[int] = _field("gidset", factory=list)
    flags: dict[str, Any] = _field("flags", factory=dict)
    uid_map: list[IDMap] = _field("uidmap", factory=list)
    gid_map: list[IDMap] = _field("gidmap", factory=list)
    big_data_names: list[str] = _field("big-data-names", factory=list)
    # Not persisted in layers.json.
    mount_point: str = _field("", persist=False, default="")
    mount_count: int = _field("", persist=False, default=0)
    read_only: bool = _field("", persist=False, default=False)
    volatile: bool = _field("", persist=False, default=False)
    # Whether the record lives in the split image store's layers.json (read-only layers
    # created while ``--image-store`` is set, as HEAD's imageStoreLayerLocation).
    in_image_store: bool = _field("", persist=False, default=False)

    @property
    def incomplete(self) -> bool:
        return bool(self.flags.get("incomplete"))

    @property
    def id_maps(self) -> IDMapPair:
        """The maps its files are owned for on disk (what a diff translates through)."""
        return self.uid_map, self.gid_map


@recordclass.define
class Image:
    id: str = _field("id", omitempty=False)
    digest: str = _field("digest", default="")
    names: list[str] = _field("names", factory=list)
    names_history: list[str] = _field("names-history", factory=list)
    top_layer: str = _field("layer", default="")
    mapped_top_layers: list[str] = _field("mapped-layers", factory=list)
    metadata: str = _field("metadata", default="")
    big_data_names: list[str] = _field("big-data-names", factory=list)
    big_data_sizes: dict[str, int] = _field("big-data-sizes", factory=dict)
    big_data_digests: dict[str, str] = _field("big-data-digests", factory=dict)
    created: _dt.datetime = _field("created", omitempty=False, factory=utcnow)
    flags: dict[str, Any] = _field("flags", factory=dict)
    # Derived on load (digest + manifest* digests); never persisted.
    digests: list[str] = _field("", persist=False, factory=list)
    read_only: bool = _field("", persist=False, default=False)


@recordclass.define
class Container:
    id: str = _field("id", omitempty=False)
    names: list[str] = _field("names", factory=list)
    image: str = _field("image", omitempty=False, default="")
    layer: str = _field("layer", omitempty=False, default="")
    metadata: str = _field("metadata", default="")
    big_data_names: list[str] = _field("big-data-names", factory=list)
    big_data_sizes: dict[str, int] = _field("big-data-sizes", factory=dict)
    big_data_digests: dict[str, str] = _field("big-data-digests", factory=dict)
    created: _dt.datetime = _field("created", omitempty=False, factory=utcnow)
    uid_map: list[IDMap] = _field("uidmap", factory=list)
    gid_map: list[IDMap] = _field("gidmap", factory=list)
    flags: dict[str, Any] = _field("flags", factory=dict)
    # Whether the record lives in volatile-containers.json. Only containers created volatile
    # go there (HEAD's volatileStore): one that Go 1.43 wrote to containers.json with the
    # Volatile flag stays in containers.json, where 1.43 still finds it.
    volatile_store: bool = _field("", persist=False, default=False)

    @property
    def volatile(self) -> bool:
        return bool(self.flags.get("Volatile"))


@recordclass.define
class MountRecord:
    """One entry of ``mountpoints.json``: a mounted layer and its reference count."""

    id: str = _field("id", omitempty=False)
    path: str = _field("path", omitempty=False, default="")
    count: int = _field("count", omitempty=False, default=0)


@recordclass.frozen
class Change:
    """One path that differs between a layer and its parent (Go ``archive.Change``)."""

    MODIFY = 0
    ADD = 1
    DELETE = 2

    path: str
    kind: int

    @property
    def kind_name(self) -> str:
        return ("Modify", "Add", "Delete")[self.kind]


@recordclass.frozen
class ApplyResult:
    """What applying a tar stream found: its uncompressed length and the owners it used.

    ``uids``/``gids`` are the sorted distinct IDs named in the tar headers (whiteouts
    excluded), as Go records them in ``uidset``/``gidset``.
    """

    size: int
    uids: tuple[int, ...] = ()
    gids: tuple[int, ...] = ()
