"""Module attributes imported on first use (PEP 562), for the public re-export modules.

``cs_core`` and ``cs_core.drivers.api`` name things from across the core; importing them all
eagerly would add tens of milliseconds to every CLI run for names most runs never touch.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    namespace: dict[str, Any], table: Mapping[str, tuple[str, ...]],
    renamed: Mapping[str, tuple[str, str]] | None = None,
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for a module exporting, from each module in ``table``,
    the names listed, and each ``renamed`` name as ``(module, attribute)``."""
    where = {name: (module, name) for module, names in table.items() for name in names}
    where.update(renamed or {})
    public = sorted(where)

    def getattr_(name: str) -> Any:
        if name not in where:
            raise AttributeError(f"module {namespace['__name__']!r} has no attribute {name!r}")
        module, attr = where[name]
        value = getattr(importlib.import_module(module), attr)
        namespace[name] = value  # later lookups skip this function
        return value

    def dir_() -> list[str]:
        return sorted({*namespace, *public})

    return getattr_, dir_
