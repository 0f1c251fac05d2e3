"""Turning "that driver is not here" into what to do about it.

Driver selection (cs_core.selection) says which driver it could not find; this says which
setting asked for it (the flag or ``driver_name=``, ``STORAGE_DRIVER``, storage.conf, or a
store already on disk), which package provides it and which drivers are installed.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

from cs_core.config import StoreOptions
from cs_core.drivers.plugins import PluginRegistry
from cs_core.errors import DriverNotInstalled, StorageError

#: The distributions that provide the drivers cs_core ships.
PACKAGES = {"overlay": "cs-overlay", "vfs": "cs-vfs", "btrfs": "cs-btrfs"}
_ALIASES = {"overlay2": "overlay"}


def installed_drivers(registry: PluginRegistry) -> list[str]:
    """Names of the drivers that load (a plugin that fails to load provides none)."""
    try:
        return sorted(registry.drivers())
    except StorageError:
        return sorted(n for n, p in registry.plugins.items() if p.loaded and p.drivers)


def explain(error: StorageError, registry: PluginRegistry, options: StoreOptions,
            graph_root: Path) -> StorageError:
    """A better error for a driver that is not installed; ``error`` itself otherwise."""
    installed = installed_drivers(registry)
    name = _ALIASES.get(options.driver_name, options.driver_name)
    if name:
        origin = _origin_of_name(name, options)
    else:
        prior = sorted(n for n in PACKAGES if (graph_root / n).is_dir() and n not in installed)
        if len(prior) != 1:
            return _nothing_installed(installed) or error
        name, origin = prior[0], f"the {prior[0]} store already in {graph_root / prior[0]}"
    if name in installed or registry.plugins.get(name) is not None:
        return error  # it is there but failed, or is blocked: that error says why
    return DriverNotInstalled(f'graph driver "{name}" is not installed (asked for by {origin})'
                              f"{_install_hint(name)}; installed drivers: "
                              f"{', '.join(installed) or 'none'}")


def _install_hint(name: str) -> str:
    package = PACKAGES.get(name)
    return f": pip install {package}" if package else ""


def _nothing_installed(installed: list[str]) -> StorageError | None:
    if installed:
        return None
    choices = " or ".join(f"pip install {p}" for p in PACKAGES.values())
    return DriverNotInstalled(f"no graph driver is installed: {choices}")


def _origin_of_name(name: str, options: StoreOptions) -> str:
    if _ALIASES.get(os.environ.get("STORAGE_DRIVER", ""), os.environ.get("STORAGE_DRIVER")) == name:
        return "STORAGE_DRIVER in the environment"
    conf = _configured_driver(options.config_file)
    if conf and _ALIASES.get(conf, conf) == name:
        return f'driver = "{conf}" in {options.config_file}'
    return "-s/--storage-driver, or driver_name= in the API"


def _configured_driver(path: str) -> str:
    if not path:
        return ""
    try:
        with open(path, "rb") as f:
            storage = tomllib.load(f).get("storage", {})
    except (OSError, tomllib.TOMLDecodeError):
        return ""
    driver = storage.get("driver", "") if isinstance(storage, dict) else ""
    return driver if isinstance(driver, str) else ""
