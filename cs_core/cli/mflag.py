"""A flag parser that behaves like Docker's ``pkg/mflag``, which the Go CLI uses.

click's own parser differs in ways scripts notice (``--debug=false``, clustered short flags,
where errors go, exit codes), so the CLI parses argv here, driven by the commands' option
declarations (``command.Option``, or a ``click.Option``: both have the attributes read here).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import click

    from cs_core.cli.command import Option

from cs_core.drivers.optvalues import go_bool

PROG = "containers-storage"

# Accepted but left out of help texts, so the option table stays as Go prints it.
HIDDEN_NAMES = {"-driver"}



class FlagError(Exception):
    """A parse failure; the message is Go's and has already been printed to stderr."""


class HelpRequested(FlagError):
    """``--help``/``-h`` was given where it is not a defined flag."""

    def __init__(self) -> None:
        super().__init__("flag: help requested")


class Flag:
    """One flag: its mflag names (``-graph`` is ``--graph``, ``g`` is ``-g``) and kind."""

    __slots__ = ("default", "dest", "kind", "names", "usage")

    def __init__(self, dest: str, names: list[str], kind: str, usage: str, default: Any) -> None:
        self.dest = dest
        self.names = names
        self.kind = kind  # "bool", "string" or "list"
        self.usage = usage
        self.default = default

    @classmethod
    def from_option(cls, option: Option | click.Option) -> Flag:
        names = [opt[1:] for opt in option.opts]  # "--graph" -> "-graph", "-g" -> "g"
        if option.is_flag:
            kind = "bool"
        elif option.multiple:
            kind = "list"
        else:
            kind = "string"
        default = option.default
        # click 8.2+ marks "no default" with a sentinel object rather than None.
        if kind == "list":
            default = list(default) if isinstance(default, list | tuple) else []
        elif kind == "bool":
            default = default is True
        elif not isinstance(default, str):
            default = ""
        return cls(option.name or names[0], names, kind, option.help or "", default)

    def default_text(self, value: Any) -> str:
        """Go's ``Value.String()`` of the flag's value."""
        if self.kind == "bool":
            return "true" if value else "false"
        if self.kind == "list":
            return "[" + " ".join(value) + "]"
        return str(value)


class FlagSet:
    """The flags of one parse (global flags plus a command's own) and their values."""

    def __init__(self, name: str, flags: Iterable[Flag], values: dict[str, Any] | None = None) -> None:
        self.name = name
        self.flags = list(flags)
        self.formal: dict[str, Flag] = {}
        for flag in self.flags:
            for n in flag.names:
                self.formal[n] = flag
        self.values: dict[str, Any] = {}
        for flag in self.flags:
            start = (values or {}).get(flag.dest, flag.default)
            self.values[flag.dest] = list(start) if flag.kind == "list" else start
        # The help text shows the values as they stood before this parse, as Go does.
        self.defaults = {f.dest: f.default_text(self.values[f.dest]) for f in self.flags}
        self.errors: list[str] = []

    def _fail(self, message: str) -> FlagError:
        see = f"See '{PROG} --help'." if self.name == PROG else f"See '{PROG} {self.name} --help'."
        self.errors.append(f"{message}\n{see}\n")
        return FlagError(message)

    def parse(self, args: Sequence[str]) -> list[str]:
        """Consume flags from the front of ``args``; return the remaining arguments."""
        rest = list(args)
        while rest:
            s = rest[0]
            if len(s) < 2 or s[0] != "-":
                break
            if s == "--":
                rest.pop(0)
                break
            name = s[1:]
            if name[0] == "=":
                raise self._fail(f"bad flag syntax: {s}")
            rest.pop(0)
            value: str | None = None
            if "=" in name:
                name, value = name.split("=", 1)
                value = _trim_quotes(value)
            flag = self.formal.get(name)
            if flag is None:
                if name in ("-help", "help", "h"):
                    raise HelpRequested()
                if name.startswith("-") or len(name) == 1:
                    raise self._fail(f"flag provided but not defined: -{name}")
                # mflag retries "-abc" as "-a -b -c".
                letters = [self.formal.get(letter) for letter in name]
                if any(f is None for f in letters):
                    raise self._fail(f"flag provided but not defined: -{name}")
                for letter, lflag in zip(name, letters, strict=True):
                    assert lflag is not None
                    rest = self._set(lflag, letter, None, rest)
                continue
            rest = self._set(flag, name, value, rest)
        return rest

    def _set(self, flag: Flag, name: str, value: str | None, rest: list[str]) -> list[str]:
        if flag.kind == "bool":
            if value is None:
                self.values[flag.dest] = True
            else:
                parsed = go_bool(value)
                if parsed is None:
                    raise self._fail(
                        f'invalid boolean value "{value}" for  -{name}: '
                        f'strconv.ParseBool: parsing "{value}": invalid syntax'
                    )
                self.values[flag.dest] = parsed
            return rest
        if value is None:
            if not rest:
                raise self._fail(f"flag needs an argument: -{name}")
            value = rest.pop(0)
        if flag.kind == "list":
            self.values[flag.dest].append(value)
        else:
            self.values[flag.dest] = value
        return rest

    def format_defaults(self) -> str:
        """Go's ``PrintDefaults``: sorted flags in a tabwriter table (minwidth 20, padding 3)."""
        home = os.environ.get("HOME", "")
        if home == "/":
            home = ""
        rows: list[tuple[str, str]] = []
        for flag in sorted(self.flags, key=_sort_key):
            if not flag.usage:
                continue
            val = self.defaults[flag.dest]
            if home and val.startswith(home):
                val = "~" + val[len(home):]
            cell = "  -" + ", -".join(n for n in flag.names if n not in HIDDEN_NAMES)
            if val not in ("", "false", "0"):
                cell += "=" + val
            rows.append((cell, flag.usage))
        if not self.flags:
            return ""
        width = max([20] + [len(cell) + 3 for cell, _ in rows])
        lines = [""] + [f"{cell.ljust(width)} {usage}" for cell, usage in rows]
        return "\n".join(lines) + "\n"


def _sort_key(flag: Flag) -> tuple[str, str]:
    # mflag's flagSlice order: one leading "-" dropped, case-insensitive first.
    name = flag.names[0].removeprefix("-")
    return name.lower(), name


def _trim_quotes(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value
