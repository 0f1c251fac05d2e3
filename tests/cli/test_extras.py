"""Commands beyond the Go CLI's core set: plugins, plugin commands, config, storage layers, gc."""

from __future__ import annotations

import json
import types
from pathlib import Path

import click
import pytest

from cs_core.drivers.hookspecs import hookimpl
from cs_core.drivers.plugins import default_registry

from .conftest import CLI


def test_plugins_lists_installed_drivers(bare: CLI) -> None:
    r = bare("plugins", bare=True)
    assert r.rc == 0
    names = [line.split(":")[0] for line in r.out.splitlines() if not line.startswith("\t")]
    assert names == sorted(names) and names
    doc = json.loads(bare("plugins", "--json", bare=True).out)
    assert {"name", "distribution", "version", "loaded", "drivers", "error"} <= set(doc[0])
    assert any(p["loaded"] and p["drivers"] for p in doc)


def test_blocked_plugin_is_reported(bare: CLI) -> None:
    first = json.loads(bare("plugins", "--json", bare=True).out)[0]["name"]
    r = bare("plugins", bare=True, env={"CS_CORE_DISABLE_PLUGINS": first})
    assert f"{first}: blocked" in r.out


def test_plugin_commands_are_added_after_builtins(capsys: pytest.CaptureFixture[str]) -> None:
    from cs_core.cli import main as cli_main
    from cs_core.cli.app import cli as app_cli
    from cs_core.cli.commands import builtin

    @click.command("hello", help="Say hello")
    @click.argument("who")
    @click.pass_obj
    def hello(env: object, who: str) -> None:
        click.echo(f"hello {who} from {type(env).__name__}")

    @click.command("layers", help="An attempt to shadow a built-in")
    def shadow() -> None:
        click.echo("shadowed")

    plugin = types.ModuleType("cs_test_cli_plugin")

    @hookimpl
    def cs_register_commands(cli: click.Group) -> None:
        cli.add_command(hello)
        cli.add_command(shadow)

    plugin.cs_register_commands = cs_register_commands  # type: ignore[attr-defined]
    registry = default_registry()
    registry.register_plugin(plugin, "test-cli-plugin")
    cli_main._plugins_loaded = False
    try:
        assert cli_main.run(["hello", "world"]) == 0
        assert capsys.readouterr().out == "hello world from Env\n"
        assert cli_main.run(["hello"]) == 125  # click's own usage error for a plugin command
        assert cli_main.find_command("layers") is builtin("layers")
    finally:
        registry.pm.unregister(name="test-cli-plugin")
        app_cli.commands.pop("hello", None)
        cli_main._plugins_loaded = False


def test_config_prints_go_store_options(bare: CLI, tmp_path: Path) -> None:
    conf = tmp_path / "storage.conf"
    conf.write_text('[storage]\ndriver = "vfs"\ngraphroot = "/srv/g"\nrunroot = "/srv/r"\n')
    doc = json.loads(bare("config", str(conf), bare=True).out)
    assert (doc["driver"], doc["root"], doc["runroot"]) == ("vfs", "/srv/g", "/srv/r")
    conf.write_text("[storage\n")
    r = bare("config", str(conf), bare=True)
    assert r.rc == 1 and r.err.startswith(f"{conf}") and r.err.count("\n") == 1


def test_storage_layers_and_gc(cli: CLI) -> None:
    made = cli.ok("create-storage-layer", "-i", "7" * 64).strip()
    assert made == "7" * 64
    assert cli.ok("storage-layers") == f"{made}\n"
    assert cli.ok("layers") == ""
    assert cli.ok("gc", "--json") == '""\n'
    assert cli.ok("storage-layers") == ""


def test_debug_flag(cli: CLI) -> None:
    r = cli("--debug=false", "layers")
    assert (r.rc, r.err) == (0, "")
    r = cli("-D", "layers")
    assert r.rc == 0 and f'level=debug msg="Root: {cli.graph}"' in r.err


def test_parse_duration() -> None:
    import datetime as dt

    from cs_core.cli.commands.check import parse_duration

    assert parse_duration("24h") == dt.timedelta(hours=24)
    assert parse_duration("1h30m") == dt.timedelta(minutes=90)
    assert parse_duration("1.5s") == dt.timedelta(seconds=1.5)
    assert parse_duration("0") == dt.timedelta(0)
    for bad in ("", "h", "10", "1x", "bogus"):
        assert parse_duration(bad) is None, bad


def test_check_reports_and_repairs(cli: CLI) -> None:
    layer = cli.ok("create-layer", "-n", "orphan").split("\n")[0]
    assert cli("check").rc == 0  # younger than the default 24h
    r = cli("check", "-m", "0")
    assert r.rc == 1
    assert r.out == (f"layer {layer}:\n layer {layer}: layer not referenced by any images or "
                     "containers\n")
    assert r.err == ("1 layer errors, 0 read-only layer errors, 0 image errors, "
                     "0 read-only image errors, 0 container errors\n")
    doc = json.loads(cli("check", "--json", "--quick", "-m", "0").out)
    assert doc["Layers"] == {layer: [{}]} and doc["Containers"] == {}
    assert cli("check", "-m", "bogus").rc == 1  # Go: a string flag, ParseDuration error
    assert cli("check", "--repair", "-m", "0").rc == 0
    assert cli.ok("layers") == ""
    assert cli("check", "-m", "0").rc == 0
