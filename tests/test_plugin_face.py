"""The public plugin face: what driver packages may import, and how they depend on cs_core.

Drivers import names from ``cs_core`` (the contract) and ``cs_core.drivers.api`` (shared
helpers) only; the rest of the core may change under them. These tests scan the driver
packages' sources, so an import of a private module fails here, not in a user's upgrade.
"""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

import cs_core
from cs_core.drivers import api

ROOT = Path(__file__).resolve().parents[1]
PUBLIC = {"cs_core": cs_core, "cs_core.drivers.api": api}
PACKAGES = sorted(p for base in (ROOT / "plugins", ROOT / "docs" / "examples", ROOT / "tests" / "thirdparty")
                  if base.is_dir() for p in base.glob("*/cs_*") if (p / "__init__.py").is_file())
PROJECTS = sorted(p.parent / "pyproject.toml" for p in PACKAGES)


def _core_imports(path: Path) -> list[tuple[int, str, str]]:
    """(line, module, name) of every cs_core import in a file (name "" for ``import x``)."""
    found: list[tuple[int, str, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 \
                and node.module.split(".")[0] == "cs_core":
            found += [(node.lineno, node.module, alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, "") for alias in node.names
                      if alias.name.split(".")[0] == "cs_core"]
    return found


def test_driver_packages_are_found() -> None:
    names = {p.name for p in PACKAGES}
    assert {"cs_vfs", "cs_overlay", "cs_btrfs", "cs_tinydriver"} <= names


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.name)
def test_plugins_import_only_public_names(package: Path) -> None:
    bad = []
    for source in sorted(package.rglob("*.py")):
        for line, module, name in _core_imports(source):
            where = f"{source.relative_to(ROOT)}:{line}"
            if module not in PUBLIC:
                bad.append(f"{where}: {module} is private to cs_core")
            elif name and name not in PUBLIC[module].__all__:
                bad.append(f"{where}: {module}.{name} is not exported")
            elif not name:
                bad.append(f"{where}: import {module} (import names from it)")
    assert bad == []


@pytest.mark.parametrize("module", sorted(PUBLIC))
def test_export_tables_match_what_type_checkers_see(module: str) -> None:
    """``__all__``, the lazy table and the TYPE_CHECKING imports name the same things, and
    every name resolves to the object its home module defines."""
    mod = PUBLIC[module]
    tree = ast.parse(Path(str(mod.__file__)).read_text())
    [block] = [n for n in tree.body if isinstance(n, ast.If) and ast.unparse(n.test) == "TYPE_CHECKING"]
    typed = {(a.asname or a.name): (n.module, a.name) for n in block.body
             if isinstance(n, ast.ImportFrom) for a in n.names}
    assert set(typed) == set(mod.__all__)
    for name, (home, attr) in typed.items():
        assert getattr(mod, name) is getattr(importlib.import_module(str(home)), attr), name
    with pytest.raises(AttributeError):
        _ = mod.no_such_name  # type: ignore[attr-defined]


@pytest.mark.parametrize("project", PROJECTS, ids=lambda p: p.parent.name)
def test_plugins_depend_on_a_bounded_core(project: Path) -> None:
    deps = tomllib.loads(project.read_text())["project"]["dependencies"]
    [core] = [d for d in deps if d.replace("_", "-").startswith("cs-core")]
    assert ">=" in core and "<" in core.replace("<=", ""), core


def test_testing_extra_is_pytest_alone() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["optional-dependencies"]["testing"] == ["pytest>=8"]
    assert "pytest11" not in project.get("entry-points", {})


def test_the_pytest_plugin_is_opt_in(tmp_path: Path) -> None:
    """An unrelated project's pytest run does not get cs_core's fixtures; one that asks does."""
    (tmp_path / "test_x.py").write_text(textwrap.dedent("""
        def test_uses_it(cs_registry):
            assert "vfs" in cs_registry.plugins
    """))

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                               *args, "test_x.py"], cwd=tmp_path, capture_output=True, text=True,
                              timeout=120)

    plain = run()
    assert plain.returncode != 0 and "fixture 'cs_registry' not found" in plain.stdout
    asked = run("-p", "cs_core.testing")
    assert asked.returncode == 0, asked.stdout + asked.stderr
