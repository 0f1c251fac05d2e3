"""Parsing the overlay driver's ``key=value`` options exactly as Go's ``parseOptions``."""

from __future__ import annotations

import os
from pathlib import Path

from cs_core.drivers.api import define, field, parse_bool
from cs_core.drivers.api import ram_in_bytes as ram_in_bytes  # re-exported: tests use it here
from cs_overlay.errors import OverlayConfigError as ConfigError


def parse_uint(value: str) -> int:
    if not value.isdigit():
        raise ConfigError(f'strconv.ParseUint: parsing "{value}": invalid syntax')
    return int(value)


def parse_force_mask(value: str) -> int:
    if value == "shared":
        return 0o755
    if value == "private":
        return 0o700
    try:
        return int(value, 8)
    except ValueError:
        raise ConfigError(f'strconv.ParseInt: parsing "{value}": invalid syntax') from None


@define
class OverlayOptions:
    mount_options: str = ""
    mount_program: str = ""
    skip_mount_home: bool = False
    ignore_chown_errors: bool = False
    force_mask: int | None = None
    quota_size: int = 0
    quota_inodes: int = 0
    image_stores: list[Path] = field(factory=list)
    layer_stores: list[tuple[Path, bool]] = field(factory=list)


def _strip_key(key: str) -> str:
    k = key.lower()
    for prefix in ("overlay.", "overlay2.", "."):
        k = k.removeprefix(prefix)
    return k


def _dirs(val: str, what: str) -> list[str]:
    return [os.path.normpath(s) for s in val.split(",")] if val else []


def parse_options(options: tuple[str, ...] | list[str]) -> OverlayOptions:
    """Parse driver options; options addressed to other drivers (``vfs.x``) are ignored."""
    o = OverlayOptions()
    for option in options:
        key, sep, val = option.partition("=")
        if not sep:
            raise ConfigError(f"unable to parse key/value option: {option}")
        key = key.strip()
        val = val.strip()
        lowered = key.lower()
        if "." in lowered.lstrip(".") and not lowered.startswith(("overlay.", "overlay2.")):
            continue  # meant for another driver
        k = _strip_key(key)
        if k == "override_kernel_check":
            pass
        elif k == "mountopt":
            o.mount_options = val
        elif k == "size":
            o.quota_size = ram_in_bytes(val)
        elif k == "inodes":
            o.quota_inodes = parse_uint(val)
        elif k in ("imagestore", "additionalimagestore"):
            for store in _dirs(val, "imagestore"):
                if not os.path.isabs(store):
                    raise ConfigError(f'overlay: image path "{store}" is not absolute.  Can not be relative')
                try:
                    st = os.stat(store)
                except OSError as exc:
                    raise ConfigError(
                        f"overlay: can't stat imageStore dir {store}: {exc.strerror}") from None
                if not os.path.isdir(store) or not st:
                    raise ConfigError(f'overlay: image path "{store}" must be a directory')
                o.image_stores.append(Path(store))
        elif k == "additionallayerstore":
            for entry in val.split(",") if val else []:
                path, *flags = entry.split(":")
                path = os.path.normpath(path)
                if not os.path.isabs(path):
                    raise ConfigError(
                        f'overlay: additionallayerstore path "{path}" is not absolute.  Can not be relative')
                if not os.path.isdir(path):
                    raise ConfigError(f'overlay: additionallayerstore path "{path}" must be a directory')
                bad = [f for f in flags if f != "ref"]
                if bad:
                    raise ConfigError(
                        f'overlay: additionallayerstore config "{path}" contains unknown option "{bad[0]}"')
                o.layer_stores.append((Path(path), bool(flags)))
        elif k == "mount_program":
            if val and not os.path.exists(val):
                raise ConfigError(f'overlay: can\'t stat program "{val}": no such file or directory')
            o.mount_program = val
        elif k == "skip_mount_home":
            o.skip_mount_home = parse_bool(val)
        elif k == "ignore_chown_errors":
            o.ignore_chown_errors = parse_bool(val)
        elif k == "force_mask":
            o.force_mask = parse_force_mask(val)
        else:
            raise ConfigError(f"overlay: unknown option {key}")
    return o
