"""Entry-point module: registers the vfs driver (kept free of heavy imports)."""

from __future__ import annotations

from collections.abc import Callable

from cs_core import hookimpl


@hookimpl
def cs_register_graph_drivers(register: Callable[[type], None]) -> None:
    from cs_vfs.driver import VfsDriver

    register(VfsDriver)
