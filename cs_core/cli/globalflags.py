"""The global flags every command also accepts (as in Go), declared once.

Below both the click group (``clickview``) and ``app``, which re-exports them: the group adds
them to its parameters without importing ``app``, so the two no longer import each other.
"""

from __future__ import annotations

from cs_core.cli.command import Option
from cs_core.userns.rootless import is_rootless

_ROOTLESS = is_rootless()  # Go's default for --unshare

# The parser adds them to every command's flag set, as the Go CLI does.
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
