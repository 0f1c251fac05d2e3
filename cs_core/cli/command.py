"""Declaring a command (its flags as plain data, its arguments) and the environment it runs in:
the global flags and the lazily opened store."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from cs_core.cli.output import describe
from cs_core.errors import StorageError

if TYPE_CHECKING:
    from cs_core.config import StoreOptions
    from cs_core.store import Store

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

UNLIMITED = -1


class Option:
    """One flag a command declares, as plain data: the arguments of ``click.option``.

    The hot path reads them (names, kind, default, help) without importing click;
    ``cs_core.cli.clickview`` turns them into ``click.Option`` objects for docs and plugins.
    """

    __slots__ = ("decls", "default", "help", "is_flag", "kwargs", "multiple", "name", "opts")

    def __init__(self, *decls: str, **kwargs: Any) -> None:
        self.decls = decls
        self.kwargs = kwargs
        self.opts = [d for d in decls if d.startswith("-")]
        explicit = [d for d in decls if not d.startswith("-")]
        self.name = explicit[0] if explicit else _dest_of(self.opts)
        self.is_flag = bool(kwargs.get("is_flag"))
        self.multiple = bool(kwargs.get("multiple"))
        self.default = kwargs.get("default")
        self.help = kwargs.get("help") or ""


def _dest_of(opts: list[str]) -> str:
    # click's rule: the first of the names with the longest prefix ("--x" before "-x").
    best = max(opts, key=lambda o: len(o) - len(o.lstrip("-")))
    return best.lstrip("-").replace("-", "_").lower()


def option(*decls: str, **kwargs: Any) -> Callable[[F], F]:
    """``click.option``'s signature, recording plain data (declaration order, as click)."""

    def decorator(func: F) -> F:
        func.__dict__.setdefault("__cs_options__", []).append(Option(*decls, **kwargs))
        return func

    return decorator


class Command:
    """A Go-style command: its callback, flags and the Go CLI's metadata, as plain data.

    ``max_args`` follows the newer Go CLI: ``UNLIMITED`` (-1) or a count, where 0 means no
    arguments (1.43 treated 0 as unlimited, so ``layers extra`` was accepted there).
    """

    __slots__ = (
        "aliases",
        "callback",
        "help",
        "max_args",
        "min_args",
        "name",
        "needs_store",
        "options_help",
        "params",
        "short_help",
    )

    def __init__(self, name: str, usage: str, callback: Callable[..., Any], *,
                 aliases: tuple[str, ...] = (), options_help: str = "", min_args: int = 0,
                 max_args: int = UNLIMITED, needs_store: bool = True) -> None:
        self.name = name
        self.help = self.short_help = usage
        self.callback = callback
        self.aliases = aliases
        self.options_help = options_help
        self.min_args = min_args
        self.max_args = max_args
        self.needs_store = needs_store
        self.params: list[Option] = list(reversed(callback.__dict__.get("__cs_options__", [])))


#: Every built-in command declared so far, by name (filled as command modules are imported).
REGISTRY: dict[str, Command] = {}


def command(name: str, usage: str, *, aliases: tuple[str, ...] = (), options_help: str = "",
            min_args: int = 0, max_args: int = UNLIMITED,
            needs_store: bool = True) -> Callable[[Callable[..., Any]], Command]:
    """Declare a Go-style command; the callback gets ``(env, args, **flags)``."""

    def decorator(func: Callable[..., Any]) -> Command:
        cmd = Command(name, usage, func, aliases=aliases, options_help=options_help,
                      min_args=min_args, max_args=max_args, needs_store=needs_store)
        REGISTRY[name] = cmd
        return cmd

    return decorator


json_option = option("--json", "-j", "json_output", is_flag=True, help="Prefer JSON output")


class CommandError(StorageError):
    """A failure worded entirely by the command (no library message appended)."""

    def __str__(self) -> str:
        return self.detail or ""


class InitError(Exception):
    """The store could not be opened (Go: ``error initializing: <err>`` on stdout, exit 1)."""


class Env:
    """Global flag values and the lazily opened store (the click context object)."""

    def __init__(self, values: dict[str, Any], conf: StoreOptions | None = None) -> None:
        self.values = values
        self.conf = conf  # storage.conf as already read for the flags' defaults
        self.debug = bool(values.get("debug"))
        self._store: Store | None = None

    def store(self) -> Store:
        if self._store is None:
            from cs_core.config import resolve_cli_options
            from cs_core.store import open_store

            v = self.values
            try:
                options = resolve_cli_options(
                    v.get("graph") or None, v.get("run") or None, v.get("storage_driver") or None,
                    list(v.get("storage_opt") or ()), v.get("image_store") or None,
                    bool(v.get("transient_store")), self.conf,
                )
                self._store = open_store(options)
            except (StorageError, OSError) as exc:
                raise InitError(describe(exc)) from exc
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.free()  # as Go's CLI: the driver stays set up for the next command
            self._store = None


def lookup_each(lookup: Callable[[str], T], args: tuple[str, ...]) -> list[T]:
    """The items ``args`` name, skipping those that match nothing.

    The examining commands (``layer``, ``image``, ``container`` and the parent-owner reports) show
    unmatched arguments only in their exit status, as Go's do.
    """
    found: list[T] = []
    for arg in args:
        try:
            found.append(lookup(arg))
        except StorageError:
            continue
    return found
