"""The click view of the CLI: the top-level group, and click commands built from the plain
declarations in ``command``.

Only what needs click imports this module: plugins adding commands (``cs_register_commands``
gets the group), generated docs and the full command list. Running a built-in command never
does (click's import is ~10-18 ms of a process that should cost a few times ``python -c pass``).
"""

from __future__ import annotations

from typing import Any

import click

from cs_core.cli.command import UNLIMITED, Command, Option
from cs_core.cli.globalflags import GLOBAL_OPTIONS


class GoCommand(click.Command):
    """A built-in command as click sees it, carrying the Go CLI's metadata.

    ``spec`` is the plain declaration it was built from (what dispatch runs).
    """

    def __init__(self, name: str, *, aliases: tuple[str, ...] = (), options_help: str = "",
                 min_args: int = 0, max_args: int = UNLIMITED, needs_store: bool = True,
                 spec: Command | None = None, **kwargs: Any) -> None:
        super().__init__(name, **kwargs)
        self.aliases = aliases
        self.options_help = options_help
        self.min_args = min_args
        self.max_args = max_args
        self.needs_store = needs_store
        self.spec = spec


def click_option(option: Option) -> click.Option:
    return click.Option(list(option.decls), **option.kwargs)


_built: dict[str, GoCommand] = {}


def to_click(spec: Command) -> GoCommand:
    """The click command for a built-in (one object per command, so identity holds), also
    added to the group: as seen through click, the built-ins are the group's commands."""
    cmd = _built.get(spec.name)
    if cmd is None or cmd.spec is not spec:
        params: list[click.Parameter] = [click_option(o) for o in spec.params]
        params.append(click.Argument(["args"], nargs=-1))
        cmd = GoCommand(
            spec.name, help=spec.help, short_help=spec.short_help, aliases=spec.aliases,
            options_help=spec.options_help, min_args=spec.min_args, max_args=spec.max_args,
            needs_store=spec.needs_store, spec=spec, callback=click.pass_obj(spec.callback),
            params=params,
            context_settings={"allow_interspersed_args": False},
        )
        _built[spec.name] = cmd
        group().add_command(cmd)
    return cmd


_group: click.Group | None = None


def group() -> click.Group:
    """The top-level group plugins register commands on (built on first use)."""
    global _group
    if _group is None:
        _group = click.Group(
            "containers-storage",
            help="Manage layers, images and containers in a containers/storage store.",
            context_settings={"allow_interspersed_args": False},
        )
        _group.params.extend(click_option(o) for o in GLOBAL_OPTIONS)
    return _group


def built_group() -> click.Group | None:
    """The group if something already needed it, else None (without importing more)."""
    return _group
