"""Built-in commands, one module per family; importing a module declares its commands.

A run imports only the module of the command it dispatches to (start-up time: the modules and
what they import cost more than most commands' work). The tables below say where each command
and alias lives; ``tests/cli/test_lazy_commands.py`` checks them against the modules'
registrations, so a command added to a module but not here fails the tests, not the users.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from cs_core.cli.command import REGISTRY, Command

if TYPE_CHECKING:
    from cs_core.cli.clickview import GoCommand

MODULES: dict[str, tuple[str, ...]] = {
    "check": ("check",),
    "containers": ("containers", "container", "container-parent-owners"),
    "copy": ("copy",),
    "create": ("create-layer", "import-layer", "create-image", "create-container",
               "create-storage-layer"),
    "data": ("list-layer-data", "get-layer-data", "set-layer-data", "list-image-data",
             "get-image-data", "set-image-data", "get-image-data-size", "get-image-data-digest",
             "get-image-dir", "get-image-run-dir", "list-container-data", "get-container-data",
             "set-container-data", "get-container-data-size", "get-container-data-digest",
             "get-container-dir", "get-container-run-dir"),
    "dedup": ("dedup",),
    "delete": ("delete", "delete-layer", "delete-container", "delete-image"),
    "diff": ("changes", "diffsize", "diff", "applydiff", "applydiff-using-staging-dir"),
    "images": ("images", "images-by-digest", "image"),
    "layers": ("layers", "layer", "storage-layers", "layer-parent-owners"),
    "system": ("status", "version", "wipe", "shutdown", "gc", "plugins", "config", "unshare"),
    "mount": ("mount", "unmount", "mounted"),
    "names": ("exists", "metadata", "set-metadata", "get-names", "add-names", "set-names",
              "remove-names"),
    "transfer": ("import-image", "export-image"),
}

ALIASES: dict[str, str] = {
    "createlayer": "create-layer", "importlayer": "import-layer", "createimage": "create-image",
    "createcontainer": "create-container", "createstoragelayer": "create-storage-layer",
    "listlayerdata": "list-layer-data", "getlayerdata": "get-layer-data",
    "setlayerdata": "set-layer-data", "listimagedata": "list-image-data",
    "getimagedata": "get-image-data", "setimagedata": "set-image-data",
    "getimagedatasize": "get-image-data-size", "getimagedatadigest": "get-image-data-digest",
    "getimagedir": "get-image-dir", "getimagerundir": "get-image-run-dir",
    "listcontainerdata": "list-container-data", "getcontainerdata": "get-container-data",
    "setcontainerdata": "set-container-data", "getcontainerdatasize": "get-container-data-size",
    "getcontainerdatadigest": "get-container-data-digest", "getcontainerdir": "get-container-dir",
    "getcontainerrundir": "get-container-run-dir", "deletelayer": "delete-layer",
    "deletecontainer": "delete-container", "deleteimage": "delete-image", "diff-size": "diffsize",
    "apply-diff": "applydiff", "umount": "unmount", "setmetadata": "set-metadata",
    "getnames": "get-names", "addnames": "add-names", "setnames": "set-names",
    "removenames": "remove-names",
}

MODULE_OF: dict[str, str] = {name: module for module, names in MODULES.items() for name in names}

_builtin: dict[str, Command] = {}


class CommandLoadError(Exception):
    """A built-in command's module could not be imported (a broken installation)."""


def _import(module: str) -> None:
    try:
        importlib.import_module(f"{__name__}.{module}")
    except Exception as exc:
        raise CommandLoadError(f"cannot load {__name__}.{module}: {type(exc).__name__}: {exc}") \
            from exc
    for name in MODULES[module]:
        # Plugins add commands to the click group only, so these stay the built-ins.
        _builtin.setdefault(name, REGISTRY[name])


def builtin(name: str) -> Command | None:
    """The built-in command called ``name`` (or one of its aliases), importing only its module."""
    name = ALIASES.get(name, name)
    module = MODULE_OF.get(name)
    if module is None:
        return None
    if name not in _builtin:
        _import(module)
    return _builtin[name]


def all_builtins() -> dict[str, GoCommand]:
    """Every built-in command by name, as click commands (imports every command module, and
    click: for docs, the full command list and plugins, never for dispatch)."""
    from cs_core.cli.clickview import to_click

    for module in MODULES:
        if any(name not in _builtin for name in MODULES[module]):
            _import(module)
    return {name: to_click(spec) for name, spec in _builtin.items()}
