"""Driver options (``btrfs.min_space``, ``btrfs.size``) and Go's size parsing/printing."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from cs_btrfs.errors import BtrfsConfigError
from cs_core.drivers.api import frozen
from cs_core.drivers.api import ram_in_bytes as ram_in_bytes  # re-exported: tests use it here

_DECIMAL_UNITS = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")


@frozen
class BtrfsOptions:
    min_space: int = 0
    #: Default quota of container layers (Go 1.43 rejects this key; we honour it, see README).
    size: int = 0

    @property
    def user_disk_quota(self) -> bool:
        return self.min_space > 0 or self.size > 0


def human_size(size: float) -> str:
    """Go ``units.HumanSize``: four significant digits, decimal units (``10.49MB``)."""
    i = 0
    while size >= 1000 and i < len(_DECIMAL_UNITS) - 1:
        size /= 1000
        i += 1
    return f"{size:.4g}{_DECIMAL_UNITS[i]}"


def parse_options(options: Iterable[str]) -> BtrfsOptions:
    """Parse driver options as Go's ``parseOptions`` does (``btrfs.`` prefix, lower-cased keys)."""
    min_space = 0
    size = 0
    for option in options:
        key, sep, value = option.partition("=")
        if not sep:
            raise BtrfsConfigError(f"unable to parse key/value option: {option}")
        key = key.strip().lower()
        value = value.strip()
        if key == "btrfs.min_space":
            min_space = ram_in_bytes(value)
        elif key == "btrfs.size":
            size = ram_in_bytes(value)
        elif key == "btrfs.mountopt":
            raise BtrfsConfigError("btrfs driver does not support mount options")
        else:
            raise BtrfsConfigError(f"unknown option {key}")
    return BtrfsOptions(min_space=min_space, size=size)


def parse_storage_opt(storage_opt: Mapping[str, str]) -> int:
    """The per-layer ``size`` of a create's storage options (Go ``parseStorageOpt``)."""
    size = 0
    for key, value in storage_opt.items():
        if key.lower() == "size":
            size = ram_in_bytes(value)
        else:
            raise BtrfsConfigError(f"unknown option {key.lower()}")
    return size
