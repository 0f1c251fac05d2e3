"""The CLI's hot path stays lean: what a light command run imports, checked structurally.

Start-up time is mostly imports (bench/startup.py); these tests fail when a change pulls a
heavy module into every run, not when the machine is slow.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from cs_core.cli.commands import MODULE_OF

ROOT = Path(__file__).resolve().parents[2]

# Never needed by a command that only reads or creates records: each is imported by the
# operations that use it (content, codecs, namespaces, plugin metadata).
HEAVY = [
    "importlib.metadata", "tarfile", "gzip", "zstandard", "isal", "zipfile", "argparse", "email",
    "asyncio", "concurrent.futures", "multiprocessing", "ctypes.util",
    "cs_core.unshare", "cs_core.check", "cs_core.dedup", "cs_core.archive.tarreader",
    "cs_core.staged_layers", "cs_overlay.driver", "cs_btrfs.driver",
]
# Other plugins' entry-point modules (cs_overlay.hooks: thin by contract, ~0.3 ms each) are
# imported on every store open, so that observer plugins see it (cs_store_opened); their
# drivers are not.

# Command modules that import another's helpers (names reads metadata files as create does).
SHARED = {"names": ("create",)}

PROBE = """
import json, sys
from cs_core.cli.main import run
code = run(sys.argv[1:])
print(json.dumps([code, sorted(sys.modules)]))
"""


def _modules_after(tmp_path: Path, *args: str) -> set[str]:
    # A storage.conf that does not exist: the run must not parse one it does not have.
    env = {"CONTAINERS_STORAGE_CONF": str(tmp_path / "none.conf"), "PATH": "/usr/bin:/bin"}
    flags = ["-g", str(tmp_path / "g"), "--run", str(tmp_path / "r"), "-s", "vfs"]
    proc = subprocess.run([sys.executable, "-c", PROBE, *flags, *args], capture_output=True,
                          text=True, cwd=tmp_path, env=env, timeout=60, check=True)
    code, modules = json.loads(proc.stdout.splitlines()[-1])
    assert code == 0, proc.stderr
    return set(modules)


@pytest.mark.parametrize("command", [["version"], ["layers"], ["create-layer"], ["get-names", "x"]])
def test_a_light_command_imports_no_heavy_module(tmp_path: Path, command: list[str]) -> None:
    if command[0] == "get-names":
        _modules_after(tmp_path, "create-layer", "-i", "x" * 64)
        command = ["get-names", "x" * 64]
    loaded = _modules_after(tmp_path, *command)
    assert [m for m in HEAVY if m in loaded] == []
    family = MODULE_OF[command[0]]
    allowed = {family, *SHARED.get(family, ())}
    assert {m for m in loaded if m.startswith("cs_core.cli.commands.")} == {
        f"cs_core.cli.commands.{m}" for m in allowed}  # only the dispatched command's module


def test_the_zipapp_carries_bytecode_for_every_module(tmp_path: Path) -> None:
    binary = tmp_path / "containers-storage"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "build_binary.py"), str(binary)],
                   check=True, capture_output=True)
    with zipfile.ZipFile(binary) as archive:
        names = set(archive.namelist())
    sources = {n for n in names if n.endswith(".py") and n != "__main__.py"}
    assert sources and {n for n in sources if n + "c" not in names} == set()
    # zipimport looks for mod.pyc beside mod.py, not in __pycache__.
    assert "cs_core/cli/main.pyc" in names
