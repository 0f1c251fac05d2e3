"""Entry-point module: registers the btrfs driver. Kept free of heavy imports."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cs_core import hookimpl


@hookimpl
def cs_register_graph_drivers(register: Callable[[Any], None]) -> None:
    from cs_btrfs.driver import BtrfsDriver

    register(BtrfsDriver)
