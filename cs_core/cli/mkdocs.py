"""Generate man-style markdown pages for every command from its declaration (the click view).

``python -m cs_core.cli.mkdocs [DIR]`` writes ``DIR/containers-storage.md`` and one
``DIR/containers-storage-<command>.md`` per command (default DIR: ``docs``);
``--check`` reports pages that are missing or stale instead of writing them.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from cs_core.cli.app import GLOBAL_OPTIONS
from cs_core.cli.clickview import GoCommand
from cs_core.cli.command import UNLIMITED, Option
from cs_core.cli.main import ordered_commands

PROG = "containers-storage"

EXIT_STATUS = """## EXIT STATUS

* **0** success
* **1** failure (the error is printed on one line), or wrong number of arguments
* **125** unknown option, or **--help**
"""


def _flag_line(option: click.Option | Option) -> str:
    names = ", ".join(f"**{o}**" for o in option.opts)
    if option.is_flag:
        kind = ""
    elif option.multiple:
        kind = " *value* (repeatable)"
    else:
        kind = " *value*"
    return f"* {names}{kind}: {option.help or ''}"


def _args_text(cmd: GoCommand) -> str:
    if cmd.max_args == UNLIMITED:
        count = f"at least {cmd.min_args}" if cmd.min_args else "any number of"
    elif cmd.min_args == cmd.max_args:
        count = f"exactly {cmd.min_args}"
    else:
        count = f"{cmd.min_args} to {cmd.max_args}"
    singular = cmd.max_args == 1 or (cmd.max_args == UNLIMITED and cmd.min_args == 1)
    return f"Takes {count} argument{'' if singular else 's'}."


def command_page(cmd: click.Command) -> str:
    name = cmd.name or ""
    summary = cmd.help or ""
    lines = [f"% {PROG}-{name} 1", "", "## NAME", "", f"{PROG}-{name} - {summary}", ""]
    synopsis = cmd.options_help if isinstance(cmd, GoCommand) else "[options [...]]"
    lines += ["## SYNOPSIS", "", f"**{PROG}** [*global options*] **{name}** {synopsis}".rstrip(), ""]
    lines += ["## DESCRIPTION", "", summary + "."]
    if isinstance(cmd, GoCommand):
        lines += ["", _args_text(cmd) + " Options must come before the first argument; anything "
                  "after it is an argument."]
        if cmd.aliases:
            lines += ["", "Also available as " + ", ".join(f"**{a}**" for a in cmd.aliases) + "."]
    options = [p for p in cmd.params if isinstance(p, click.Option)]
    lines += ["", "## OPTIONS", ""]
    lines += [_flag_line(o) for o in sorted(options, key=lambda o: o.opts[0])] or ["None."]
    lines += ["", "Boolean options accept **--flag=false**; values may be given as **--flag=value** "
              "or **--flag value**.", "", "## GLOBAL OPTIONS", "",
              f"Accepted before the command name or among its options; see **{PROG}**(1).", ""]
    lines += [EXIT_STATUS, "## SEE ALSO", "", f"**{PROG}**(1)", ""]
    return "\n".join(lines)


def index_page(commands: list[click.Command]) -> str:
    lines = [f"% {PROG} 1", "", "## NAME", "", f"{PROG} - manage layers, images and containers", "",
             "## SYNOPSIS", "", f"**{PROG}** [*global options*] *command* [*options*] [*arguments*]",
             "", "## GLOBAL OPTIONS", ""]
    lines += [_flag_line(o) for o in GLOBAL_OPTIONS]
    lines += ["", "Without **--graph**, **--run**, **--storage-driver** and **--storage-opt**, the "
              "store is configured by storage.conf; with any of them, only the options given (and "
              "a default for a missing root) are used.", "", "## COMMANDS", ""]
    for cmd in commands:
        aliases = ""
        if isinstance(cmd, GoCommand) and cmd.aliases:
            aliases = " (also " + ", ".join(cmd.aliases) + ")"
        lines.append(f"* [{cmd.name}]({PROG}-{cmd.name}.md){aliases}: {cmd.help or ''}")
    lines += ["", EXIT_STATUS]
    return "\n".join(lines)


def pages() -> dict[str, str]:
    commands = ordered_commands()
    result = {f"{PROG}.md": index_page(commands)}
    for cmd in commands:
        result[f"{PROG}-{cmd.name}.md"] = command_page(cmd)
    return result


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    check = "--check" in args
    args = [a for a in args if a != "--check"]
    target = Path(args[0] if args else "docs")
    stale = []
    for name, text in pages().items():
        path = target / name
        current = path.read_text() if path.exists() else None
        if current == text:
            continue
        if check:
            stale.append(name)
        else:
            target.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if stale:
        print("stale or missing pages: " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
