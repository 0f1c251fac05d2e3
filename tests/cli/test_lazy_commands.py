"""Commands are imported on dispatch: the tables that make that possible, and what users see."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from cs_core.cli import commands
from cs_core.cli.app import cli
from cs_core.cli.clickview import GoCommand
from cs_core.cli.main import ORDER


def _run_python(code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=tmp_path, timeout=60, check=False)


def test_tables_match_the_modules_registrations() -> None:
    by_module: dict[str, set[str]] = {}
    aliases: dict[str, str] = {}
    for cmd in commands.all_builtins().values():
        assert isinstance(cmd, GoCommand) and cmd.name
        module = cmd.callback.__module__ if cmd.callback else ""
        by_module.setdefault(module.rsplit(".", 1)[-1], set()).add(cmd.name)
        aliases.update({alias: cmd.name for alias in cmd.aliases})
    assert by_module == {module: set(names) for module, names in commands.MODULES.items()}
    assert aliases == commands.ALIASES
    registered = {name for name, cmd in cli.commands.items() if isinstance(cmd, GoCommand)}
    assert registered == set(commands.MODULE_OF) == set(ORDER)


def test_a_command_run_imports_only_its_module(tmp_path: Path) -> None:
    code = f"""
import sys
from cs_core.cli.main import run
assert run(["-g", "{tmp_path}/g", "-R", "{tmp_path}/r", "-s", "vfs", "createlayer"]) == 0
loaded = sorted(m for m in sys.modules if m.startswith("cs_core.cli.commands."))
print(" ".join(loaded))
"""
    r = _run_python(code, tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[-1] == "cs_core.cli.commands.create"
    assert len(r.stdout.split()) == 2  # the new layer's ID, then the one module


def test_help_lists_every_command_without_plugins(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "cs_core", "--help"], capture_output=True,
                       text=True, env={"CS_CORE_PLUGINS": "", "PATH": "/usr/bin:/bin"},
                       timeout=60, check=False)
    assert r.returncode == 0, r.stderr
    section = r.stdout.split("Commands:")[1].split("Options:")[0]
    listed = [line.split()[0] for line in section.splitlines() if line.strip()]
    assert listed == ORDER


def test_a_command_module_that_fails_to_import_is_one_clear_line(tmp_path: Path) -> None:
    # None in sys.modules makes the import fail as a broken or missing file would.
    code = f"""
import sys
sys.modules["cs_core.cli.commands.dedup"] = None
from cs_core.cli.main import main, run
assert run(["-g", "{tmp_path}/g", "-R", "{tmp_path}/r", "-s", "vfs", "layers"]) == 0
main(["-g", "{tmp_path}/g", "-R", "{tmp_path}/r", "-s", "vfs", "dedup"])
"""
    r = _run_python(code, tmp_path)
    assert r.returncode == 1
    assert r.stderr.splitlines() == [
        "containers-storage: cannot load cs_core.cli.commands.dedup: ModuleNotFoundError: "
        "import of cs_core.cli.commands.dedup halted; None in sys.modules"
    ]
