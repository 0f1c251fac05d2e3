"""The option records callers hand to the store (Go ``LayerOptions``, ``ImageOptions``,
``ContainerOptions``), in a module of their own so every room of the store can take them
without importing the façade."""

from __future__ import annotations

import datetime as _dt

from cs_core import recordclass as attrs  # attrs' API subset, without attrs' import cost
from cs_core.model import IDMap
from cs_core.progress import Progress
from cs_core.userns.auto import AutoUserNsOptions

VERSION = "1.60.0-dev"  # the Go library version whose behaviour we match


@attrs.define
class LayerOptions:
    """Go ``LayerOptions`` (the parts cs_core supports)."""

    uid_map: list[IDMap] = attrs.field(factory=list)
    gid_map: list[IDMap] = attrs.field(factory=list)
    host_uid_mapping: bool = False
    host_gid_mapping: bool = False
    template_layer: str = ""
    original_digest: str = ""
    original_size: int | None = None
    uncompressed_digest: str = ""
    volatile: bool = False
    storage_opt: dict[str, str] = attrs.field(factory=dict)
    flags: dict[str, object] = attrs.field(factory=dict)
    big_data: dict[str, bytes] = attrs.field(factory=dict)
    #: Running total of bytes read from the diff stream (the convention of cs_core.progress).
    progress: Progress | None = None


@attrs.define
class ImageOptions:
    creation_date: _dt.datetime | None = None
    digest: str = ""
    metadata: str = ""
    big_data: dict[str, bytes] = attrs.field(factory=dict)
    names_history: list[str] = attrs.field(factory=list)
    flags: dict[str, object] = attrs.field(factory=dict)


@attrs.define
class ContainerOptions:
    uid_map: list[IDMap] = attrs.field(factory=list)
    gid_map: list[IDMap] = attrs.field(factory=list)
    host_uid_mapping: bool = False
    host_gid_mapping: bool = False
    # Pick unused host IDs for the container (cs_core.store.userns); replaces the maps above.
    auto_userns: bool = False
    auto_userns_opts: AutoUserNsOptions = attrs.field(factory=AutoUserNsOptions)
    mount_label: str = ""
    process_label: str = ""
    mount_opts: list[str] = attrs.field(factory=list)
    volatile: bool = False
    storage_opt: dict[str, str] = attrs.field(factory=dict)
    flags: dict[str, object] = attrs.field(factory=dict)
    big_data: dict[str, bytes] = attrs.field(factory=dict)
