"""`make binary`: the single-file zipapp holds the core and the installed drivers and works,
runs from an extracted copy it can trust, and never from one it cannot."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from cs_core.testing import require_privileged

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bin") / "containers-storage"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "build_binary.py"), str(path)],
                   check=True, capture_output=True)
    return path


def _boot() -> ModuleType:
    spec = importlib.util.spec_from_file_location("zipapp_boot", ROOT / "scripts" / "zipapp_boot.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(binary: Path, cache: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "XDG_CACHE_HOME": str(cache), "TMPDIR": str(cache.parent)}
    return subprocess.run([str(binary), *args], capture_output=True, text=True, env=env, timeout=120)


def test_zipapp_runs_the_main_job(binary: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    base = ["-g", str(tmp_path / "g"), "-R", str(tmp_path / "r"), "-s", "vfs"]
    created = _run(binary, cache, *base, "create-layer", "-n", "zipped")
    assert created.returncode == 0, created.stderr
    listed = _run(binary, cache, *base, "layers").stdout
    assert listed.splitlines()[:2] == [created.stdout.split()[0], "\tname: zipped"]
    plugins = _run(binary, cache, *base, "plugins")  # not the machine's default store
    assert "vfs: loaded" in plugins.stdout
    # The first run unpacked the payload once, bytecode where the path finder reads it.
    copies = list((cache / "cs_core" / "zipapp").iterdir())
    assert [c.name for c in copies] == [_boot()._key(str(binary))]
    assert any((copies[0] / "cs_core" / "cli" / "__pycache__").glob("main.*.pyc"))


def _plant(cache: Path, binary: Path) -> Path:
    """A copy under the binary's key whose CLI only says it ran."""
    copy = cache / "cs_core" / "zipapp" / _boot()._key(str(binary))
    (copy / "cs_core" / "cli").mkdir(parents=True)
    (copy / "cs_core" / "__init__.py").write_text("")
    (copy / "cs_core" / "cli" / "__init__.py").write_text("")
    (copy / "cs_core" / "cli" / "main.py").write_text("def main():\n    print('PLANTED')\n")
    for d in (cache, cache / "cs_core", cache / "cs_core" / "zipapp", copy):
        d.chmod(0o700)
    return copy


@pytest.mark.parametrize("weakness", ["group-writable copy", "group-writable parent", "symlink"])
def test_zipapp_never_runs_a_copy_others_could_write(binary: Path, tmp_path: Path,
                                                     weakness: str) -> None:
    cache = tmp_path / "cache"
    copy = _plant(cache, binary)
    if weakness == "group-writable copy":
        copy.chmod(0o770)
    elif weakness == "group-writable parent":
        copy.parent.chmod(0o770)
    else:
        elsewhere = tmp_path / "elsewhere"
        copy.rename(elsewhere)
        copy.symlink_to(elsewhere)
    ran = _run(binary, cache, "version")
    assert ran.returncode == 0, ran.stderr
    assert "PLANTED" not in ran.stdout
    assert not list(tmp_path.glob("cs_core-zipapp-*"))  # the private copy went at exit


def test_zipapp_runs_a_trusted_copy(binary: Path, tmp_path: Path) -> None:
    # The control for the test above: the same planted copy, trusted, is what runs.
    cache = tmp_path / "cache"
    _plant(cache, binary)
    assert _run(binary, cache, "version").stdout == "PLANTED\n"


def test_zipapp_ignores_a_copy_owned_by_another_user(binary: Path, tmp_path: Path) -> None:
    require_privileged("chown to another user needs root")
    cache = tmp_path / "cache"
    copy = _plant(cache, binary)
    os.chown(copy, 65534, 65534)
    ran = _run(binary, cache, "version")
    assert ran.returncode == 0, ran.stderr
    assert "PLANTED" not in ran.stdout
