"""Argument parsing and usage, as Go's mflag-based CLI does them."""

from __future__ import annotations

import click
import pytest

from cs_core.cli.mflag import Flag, FlagError, FlagSet, HelpRequested

from .conftest import CLI


def flagset() -> FlagSet:
    return FlagSet("layers", [
        Flag.from_option(click.Option(["--debug", "-D"], is_flag=True, help="Print debugging")),
        Flag.from_option(click.Option(["--graph", "-g"], default="", help="Root")),
        Flag.from_option(click.Option(["--name", "-n"], multiple=True, help="Name")),
        Flag.from_option(click.Option(["--tree", "-t"], is_flag=True, help="Use a tree")),
    ])


def test_values_forms_and_stop_at_first_argument() -> None:
    fs = flagset()
    rest = fs.parse(["--graph=/a", "-n", "x", "--name=y", "-tD", "pos", "--debug=false", "-n", "z"])
    assert rest == ["pos", "--debug=false", "-n", "z"]
    assert fs.values == {"debug": True, "graph": "/a", "name": ["x", "y"], "tree": True}


def test_bool_accepts_explicit_values() -> None:
    fs = flagset()
    fs.parse(["--debug=true", "--debug=false", "-t=0"])
    assert fs.values["debug"] is False and fs.values["tree"] is False


def test_double_dash_ends_flags() -> None:
    fs = flagset()
    assert fs.parse(["--", "-t"]) == ["-t"]
    assert fs.values["tree"] is False


@pytest.mark.parametrize(("args", "message"), [
    (["--bogus"], "flag provided but not defined: --bogus"),
    (["-z"], "flag provided but not defined: -z"),
    (["-tz"], "flag provided but not defined: -tz"),
    (["--graph"], "flag needs an argument: --graph"),
    (["--tree=maybe"], 'invalid boolean value "maybe" for  --tree: strconv.ParseBool: '
                       'parsing "maybe": invalid syntax'),
    (["-=x"], "bad flag syntax: -=x"),
])
def test_errors_carry_go_messages(args: list[str], message: str) -> None:
    fs = flagset()
    with pytest.raises(FlagError) as info:
        fs.parse(args)
    assert str(info.value) == message
    assert fs.errors == [f"{message}\nSee 'containers-storage layers --help'.\n"]


def test_help_is_not_a_flag() -> None:
    for spelling in ("--help", "-help", "-h"):
        with pytest.raises(HelpRequested):
            flagset().parse([spelling])


def test_defaults_table_layout() -> None:
    fs = FlagSet("x", flagset().flags, {"graph": "/var/lib/x", "name": ["a", "b"]})
    assert fs.format_defaults() == (
        "\n"
        # widest cell (24) + padding 3, then Go's "\t" + " " before the text
        "  --debug, -D               Print debugging\n"
        "  --graph, -g=/var/lib/x    Root\n"
        "  --name, -n=[a b]          Name\n"
        "  --tree, -t                Use a tree\n"
    )


def test_no_command_prints_usage_and_fails(bare: CLI) -> None:
    r = bare(bare=True)
    assert r.rc == 1
    assert r.out.startswith("Usage: containers-storage command [options [...]]\n\nCommands:\n")
    assert "  --graph, -g" in r.err


def test_top_level_help_goes_to_stdout(bare: CLI) -> None:
    r = bare("--help", bare=True)
    assert (r.rc, r.err) == (0, "")
    assert "  --help" in r.out and "  create-layer                  Create a new layer\n" in r.out


def test_unknown_command(bare: CLI) -> None:
    r = bare("-g", "/nonexistent", "frobnicate", bare=True)
    assert (r.rc, r.out, r.err) == (1, "frobnicate: unrecognized command.\n", "")


def test_top_level_bad_flag(bare: CLI) -> None:
    r = bare("--bogus", "layers", bare=True)
    assert r.rc == 1
    assert r.err.startswith("flag provided but not defined: --bogus\nSee 'containers-storage --help'.\n")
    assert r.out.startswith("flag provided but not defined: --bogus while parsing arguments (1)\n")


def test_command_help_exits_125(bare: CLI) -> None:
    r = bare("layers", "--help")
    assert r.rc == 125
    assert r.out == "Usage: containers-storage layers [options [...]]\n\nList layers\n\nOptions:\n"
    assert "  --tree, -t " in r.err and "  --json, -j " in r.err


def test_command_bad_flag_exits_125(bare: CLI) -> None:
    r = bare("images", "--tree")
    assert (r.rc, r.out) == (125, "")
    assert r.err == "flag provided but not defined: --tree\nSee 'containers-storage images --help'.\n"


def test_argument_counts(bare: CLI) -> None:
    r = bare("create-container")
    assert r.rc == 1
    assert r.out.startswith("create-container: more arguments required.\nUsage: containers-storage "
                            "create-container [options [...]] parentImageNameOrID\n")
    r = bare("createcontainer", "a", "b")
    assert r.rc == 1
    assert r.out.startswith("createcontainer: too many arguments ([a b]).\n")
    # Flags after the first argument are arguments, as in Go.
    r = bare("set-metadata", "item", "-m", "x")
    assert r.out.startswith("set-metadata: too many arguments ([item -m x]).\n")


def test_store_init_failure(tmp_path: object, bare: CLI) -> None:
    r = bare("-g", "/proc/version/x", "-R", "/proc/version/y", "-s", "vfs", "layers", bare=True)
    assert r.rc == 1
    assert r.out.startswith("error initializing: ")
    assert "Traceback" not in r.out + r.err
