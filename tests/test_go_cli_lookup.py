"""Tests that compare with Go really run Go.

On PATH (tox's venv, a developer's), ``containers-storage`` is our own console script, so a
test that looked Go up by name would compare us with ourselves and pass whatever we print.
Go is reached only through :func:`cs_core.testing.gocli.go_cli_path`, which checks that the
file is a Go binary; the scan below keeps every test file to that.
"""

from __future__ import annotations

import ast
import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cs_core.testing import gocli, requires_command

REPO = Path(__file__).resolve().parents[1]
NAME = "containers-storage"
# Inside code handed to a subprocess as a string: an argv starting with the bare name.
_EMBEDDED_ARGV = re.compile(r"""\[\s*["']containers-storage["']""")


def _test_files() -> Iterator[Path]:
    # Not this file: its samples of what the scan catches would be caught.
    yield from sorted(p for p in (REPO / "tests").rglob("*.py") if p != Path(__file__).resolve())
    for plugin_tests in sorted((REPO / "plugins").glob("*/tests")):
        yield from sorted(plugin_tests.rglob("*.py"))


def _is_cli_name(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str) and (
        node.value == NAME or node.value.endswith("/" + NAME))


def _call_name(call: ast.Call) -> str:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


def _offences(tree: ast.AST) -> Iterator[tuple[int, str]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _call_name(node) in ("requires_command", "which"):
            if any(_is_cli_name(arg) for arg in node.args):
                yield node.lineno, f"{_call_name(node)}() of the CLI by name"
        elif isinstance(node, ast.List | ast.Tuple) and node.elts and _is_cli_name(node.elts[0]):
            yield node.lineno, "an argv that starts with the CLI's name or a fixed path"
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if gocli.DEFAULT in node.value:
                yield node.lineno, f"the fixed path {gocli.DEFAULT}"
            elif _EMBEDDED_ARGV.search(node.value):
                yield node.lineno, "an embedded argv that starts with the bare name"


def test_no_test_runs_the_cli_by_bare_name_or_fixed_path() -> None:
    found = [f"{path.relative_to(REPO)}:{line}: {what}"
             for path in _test_files()
             for line, what in _offences(ast.parse(path.read_text(), str(path)))]
    assert found == [], ("run Go through cs_core.testing.gocli.go_cli_path() (our CLI through "
                         "sys.executable -m cs_core):\n" + "\n".join(found))


def test_the_scan_catches_each_way_of_calling_go_by_name() -> None:
    offending = [
        'requires_command("containers-storage")',
        'shutil.which("containers-storage")',
        'subprocess.run(["containers-storage", "layers"])',
        'GO = "/usr/bin/containers-storage"',
        'WORKER = "exe = [\\"containers-storage\\"]"',
    ]
    for source in offending:
        assert list(_offences(ast.parse(source))), source
    assert not list(_offences(ast.parse('page = tmp / "containers-storage-layers.md"')))


def test_go_cli_path_is_the_go_binary() -> None:
    path = gocli.go_cli_path()
    assert Path(path).is_absolute()
    with open(path, "rb") as f:
        assert f.read(4) == b"\x7fELF"


@pytest.mark.parametrize("required", ["1", ""])
def test_our_console_script_is_not_taken_for_go(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, required: str
) -> None:
    # What a venv puts on PATH (pip's console-script wrapper), or the script itself if absent.
    ours = shutil.which(NAME, path=str(Path(sys.executable).parent))
    if ours is None:
        script = tmp_path / NAME
        script.write_text(f"#!{sys.executable}\nfrom cs_core.cli.main import main\nmain()\n")
        script.chmod(0o755)
        ours = str(script)
    monkeypatch.setenv(gocli.ENV, ours)
    monkeypatch.setenv("CS_REQUIRE_PRIVILEGED", required)
    expected = pytest.fail.Exception if required else pytest.skip.Exception
    with pytest.raises(expected, match="not an ELF binary"):
        gocli.go_cli_path()


@pytest.mark.parametrize(("override", "why"), [
    (NAME, "must be an absolute path"),
    ("/bin/true", "ELF binary without Go build info"),  # a C program
])
def test_other_overrides_are_refused(monkeypatch: pytest.MonkeyPatch, override: str, why: str) -> None:
    monkeypatch.setenv(gocli.ENV, override)
    monkeypatch.setenv("CS_REQUIRE_PRIVILEGED", "1")
    with pytest.raises(pytest.fail.Exception, match=why):
        gocli.go_cli_path()


def test_requires_command_refuses_the_cli() -> None:
    with pytest.raises(AssertionError, match="go_cli_path"):
        requires_command(NAME)
