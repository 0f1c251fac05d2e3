"""The global flags every command also accepts (as in Go), and the top-level click group.

The flags are plain declarations (``command.Option``); ``cli``, the click group plugins add
commands to, is built on first access so that running a built-in command never imports click.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cs_core.cli.command import Option
from cs_core.userns.rootless import is_rootless

if TYPE_CHECKING:
    import click

    cli: click.Group

_ROOTLESS = is_rootless()  # Go's default for --unshare

# Declared once here; the parser adds them to every command's flag set, as the Go CLI does.
GLOBAL_OPTIONS: list[Option] = [
    Option("--run", "-R", default="", help="Root of the runtime state tree"),
    Option("--graph", "-g", default="", help="Root of the storage tree"),
    Option("--storage-driver", "-s", "--driver", "storage_driver", default="",
           help="Storage driver to use ($STORAGE_DRIVER)"),
    Option("--storage-opt", multiple=True, help="Set storage driver options ($STORAGE_OPTS)"),
    Option("--debug", "-D", is_flag=True, help="Print debugging information"),
    Option("--image-store", default="", help="Root of the separate image store"),
    Option("--transient-store", is_flag=True, help="Keep container bookkeeping under the run root"),
    Option("--unshare", "-U", is_flag=True, default=_ROOTLESS,
           help=f"Run in a user namespace (default {str(_ROOTLESS).lower()})"),
]

HELP_OPTION = Option("--help", is_flag=True, help="Print usage")


def __getattr__(name: str) -> Any:
    if name == "cli":
        from cs_core.cli.clickview import group

        return group()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
