"""The global flags every command also accepts (as in Go), and the top-level click group.

The flags are plain declarations (``command.Option``), kept in ``globalflags`` so that the
click view can read them without importing this module; ``cli``, the click group plugins add
commands to, is built on first access so that running a built-in command never imports click.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

# Re-exported: where main, the docs hook and the tests have always read them.
from cs_core.cli.globalflags import _ROOTLESS as _ROOTLESS
from cs_core.cli.globalflags import GLOBAL_OPTIONS as GLOBAL_OPTIONS
from cs_core.cli.globalflags import HELP_OPTION as HELP_OPTION

if TYPE_CHECKING:
    import click

    cli: click.Group


def __getattr__(name: str) -> Any:
    if name == "cli":
        from cs_core.cli.clickview import group

        return group()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
