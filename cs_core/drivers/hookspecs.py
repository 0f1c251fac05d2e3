"""Hook specifications: the extension points of cs_core.

Plugins are ordinary Python distributions that declare an entry point in the group
``cs_core``; the entry point's *name* is the driver (or feature) name and its value a module
holding hook implementations marked with :data:`hookimpl`::

    # pyproject.toml of a driver package
    [project.entry-points.cs_core]
    mydriver = "cs_mydriver.hooks"

    # cs_mydriver/hooks.py -- keep it thin: no mounts, subprocesses or heavy imports here
    from cs_core import hookimpl

    @hookimpl
    def cs_register_graph_drivers(register):
        from cs_mydriver.driver import MyDriver
        register(MyDriver)

Every hook name starts with ``cs_``; implementations may accept any subset of the documented
arguments (pluggy matches them by name). A misspelled hook is reported by
``PluginManager.check_pending()``, which the core calls after loading plugins.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from cs_core.drivers.markers import PROJECT as PROJECT  # the entry-point group and marker prefix
from cs_core.drivers.markers import HookimplMarker, HookspecMarker

if TYPE_CHECKING:
    import click

    from cs_core.drivers.base import GraphDriver
    from cs_core.store import Store

#: Decorator for hook specifications (only used in this module).
hookspec = HookspecMarker(PROJECT)
#: Decorator plugins use to mark their hook implementations.
hookimpl = HookimplMarker(PROJECT)


@hookspec
def cs_register_graph_drivers(register: Callable[[type[GraphDriver]], None]) -> None:
    """Register graph driver classes.

    :param register:
        Call it once per driver class, a subclass of
        :class:`cs_core.GraphDriver` with a unique ``name``. Registering a name
        (or alias) that another plugin already registered raises
        :class:`cs_core.errors.PluginError` naming both plugins.

    Called once per plugin, lazily: only when the core needs a driver (to open a store, to
    auto-select one, or to list plugins). Import heavy modules inside the implementation,
    not at the top of the entry-point module, so that loading plugins stays cheap.

    The return value is ignored.
    """


@hookspec
def cs_register_commands(cli: click.Group) -> None:
    """Add subcommands to the ``containers-storage`` command line.

    :param cli:
        The top-level :class:`click.Group`; call ``cli.add_command(...)`` or use
        ``@cli.command()``. Command names must not shadow built-in ones.

    Called once when the CLI starts, after built-in commands are registered. Commands
    should be thin wrappers over :class:`cs_core.store.Store` (reach it through the click
    context object, ``click.get_current_context().obj.store()``).

    The return value is ignored.
    """


@hookspec
def cs_store_opened(store: Store) -> None:
    """Observe a store that has just been opened.

    :param store: the :class:`cs_core.store.Store`, fully initialised.

    Called on every plugin that is not blocked, whichever driver the store uses: a plugin
    providing only this hook (no driver) is imported for it. For plugins that keep per-store
    state (metrics, audit logs). Must not write to the store. Exceptions propagate and fail
    the open.

    The return value is ignored.
    """
