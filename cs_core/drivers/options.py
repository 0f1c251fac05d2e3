"""The option records of the graph-driver contract's calls (re-exported by
``cs_core.drivers.base`` and ``cs_core``): kept apart from ``GraphDriver`` so that the naive
implementations it falls back on (``cs_core.drivers.naive``) can build them without importing
the contract back."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from cs_core import recordclass
from cs_core.model import IDMap

if TYPE_CHECKING:
    from cs_core.archive.tarsplit import TarSplitWriter
    from cs_core.progress import Progress


@recordclass.frozen
class CreateOpts:
    """Options for creating a layer (Go ``CreateOpts``)."""

    mount_label: str = ""
    storage_opt: Mapping[str, str] = recordclass.field(factory=dict)
    uid_map: tuple[IDMap, ...] = ()
    gid_map: tuple[IDMap, ...] = ()


@recordclass.frozen
class MountOpts:
    """Options for mounting a layer (Go ``MountOpts``)."""

    mount_label: str = ""
    options: tuple[str, ...] = ()
    uid_map: tuple[IDMap, ...] = ()
    gid_map: tuple[IDMap, ...] = ()
    volatile: bool = False
    disable_shifting: bool = False

    @property
    def read_only(self) -> bool:
        return "ro" in self.options


@recordclass.frozen
class ApplyDiffOpts:
    """Options for applying an *uncompressed* tar stream to a layer.

    ``tar_split`` is an open ``cs_core.archive.tarsplit.TarSplitWriter`` (or None): the driver
    passes it on to ``cs_core.archive.apply.apply_tar`` so the stream is parsed once, and the
    core keeps the record for bit-exact diffs. ``progress`` (or None) goes to ``apply_tar``
    too, in its ``ApplyOptions``: running totals of the tar's bytes (``cs_core.progress``).
    """

    uid_map: tuple[IDMap, ...] = ()
    gid_map: tuple[IDMap, ...] = ()
    mount_label: str = ""
    ignore_chown_errors: bool = False
    force_mask: int | None = None
    tar_split: TarSplitWriter | None = None
    progress: Progress | None = None
