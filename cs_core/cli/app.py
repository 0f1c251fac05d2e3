"""The top-level click group and the global flags every command also accepts (as in Go)."""

from __future__ import annotations

import click

from cs_core.rootless import is_rootless

_ROOTLESS = is_rootless()  # Go's default for --unshare

cli = click.Group(
    "containers-storage",
    help="Manage layers, images and containers in a containers/storage store.",
    context_settings={"allow_interspersed_args": False},
)

# Declared once here; the parser adds them to every command's flag set, as the Go CLI does.
GLOBAL_OPTIONS: list[click.Option] = [
    click.Option(["--run", "-R"], default="", help="Root of the runtime state tree"),
    click.Option(["--graph", "-g"], default="", help="Root of the storage tree"),
    click.Option(["--storage-driver", "-s", "--driver"], "storage_driver", default="",
                 help="Storage driver to use ($STORAGE_DRIVER)"),
    click.Option(["--storage-opt"], multiple=True, help="Set storage driver options ($STORAGE_OPTS)"),
    click.Option(["--debug", "-D"], is_flag=True, help="Print debugging information"),
    click.Option(["--image-store"], default="", help="Root of the separate image store"),
    click.Option(["--transient-store"], is_flag=True,
                 help="Keep container bookkeeping under the run root"),
    click.Option(["--unshare", "-U"], is_flag=True, default=_ROOTLESS,
                 help=f"Run in a user namespace (default {str(_ROOTLESS).lower()})"),
]
cli.params.extend(GLOBAL_OPTIONS)

HELP_OPTION = click.Option(["--help"], is_flag=True, help="Print usage")
