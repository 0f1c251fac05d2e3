"""The installed packages carry py.typed, and the documented API script passes mypy --strict
against cs_core as installed from its wheel (not against the source tree, which mypy reads
whether or not the package says it is typed)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "docs" / "examples" / "api_tour.py"
PACKAGES = {".": "cs_core", "plugins/vfs": "cs_vfs", "plugins/overlay": "cs_overlay",
            "plugins/btrfs": "cs_btrfs"}


def _copy_sources(dest: Path) -> None:
    """The projects without build output, .venv or .git: pip builds in the tree it is given."""
    skip = shutil.ignore_patterns(".venv", ".git", "build", "*.egg-info", "__pycache__",
                                  ".tox", "tests", "bench", "docs")
    for project in PACKAGES:
        src = ROOT / project
        target = dest / project
        target.mkdir(parents=True, exist_ok=True)
        for name in ("pyproject.toml", "README.md"):
            if (src / name).exists():
                shutil.copy2(src / name, target / name)
        package = PACKAGES[project]
        shutil.copytree(src / package, target / package, ignore=skip)


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("wheels")
    _copy_sources(base / "src")
    out = base / "dist"
    projects = [str(base / "src" / p) for p in PACKAGES]
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out),
                    *projects], check=True, capture_output=True, timeout=600)
    found = {}
    for wheel in out.glob("*.whl"):
        found[wheel.name.split("-")[0]] = wheel
    assert sorted(found) == sorted(PACKAGES.values()), found
    return found


@pytest.mark.slow
def test_every_wheel_carries_py_typed(wheels: dict[str, Path]) -> None:
    for package, wheel in wheels.items():
        with zipfile.ZipFile(wheel) as z:
            assert f"{package}/py.typed" in z.namelist(), wheel.name


@pytest.mark.slow
def test_the_documented_script_passes_mypy_strict(wheels: dict[str, Path],
                                                  tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target",
                    str(target), str(wheels["cs_core"])], check=True, capture_output=True,
                   timeout=300)
    script = tmp_path / "api_tour.py"
    shutil.copy2(EXAMPLE, script)
    # mypy sees what the interpreter's sys.path holds (PYTHONPATH included) as installed
    # packages, which it reads only if they carry py.typed; it runs outside the source tree.
    env = {**os.environ, "PYTHONPATH": str(target), "MYPYPATH": ""}
    proc = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-incremental",
                           "--config-file", os.devnull, "--python-executable", sys.executable,
                           str(script)], capture_output=True, text=True, cwd=tmp_path, env=env,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # Without the marker file mypy would not read the package at all: the check is real.
    (target / "cs_core" / "py.typed").unlink()
    proc = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-incremental",
                           "--config-file", os.devnull, "--python-executable", sys.executable,
                           str(script)], capture_output=True, text=True, cwd=tmp_path, env=env,
                          timeout=300)
    assert proc.returncode != 0 and "import-untyped" in proc.stdout, proc.stdout


def test_the_documented_script_runs(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, str(EXAMPLE), str(tmp_path / "store")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("cs_core ") and "hello from a layer" in lines
    assert "lookup: layer not known" in lines
    assert "create: that name is already in use (errno 17)" in lines
    assert lines[-1] == "after the with block: store is closed"
