"""Entry-point module: only registers; the driver module is imported when needed."""

from __future__ import annotations

from collections.abc import Callable

from cs_core import hookimpl


@hookimpl
def cs_register_graph_drivers(register: Callable[[type], None]) -> None:
    from cs_tinydriver.driver import TinyDriver

    register(TinyDriver)
