"""`make binary`: the single-file zipapp holds the core and the installed drivers and works."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_zipapp_runs_the_main_job(tmp_path: Path) -> None:
    binary = tmp_path / "containers-storage"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "build_binary.py"), str(binary)],
                   check=True, capture_output=True)
    base = [str(binary), "-g", str(tmp_path / "g"), "-R", str(tmp_path / "r"), "-s", "vfs"]
    created = subprocess.run([*base, "create-layer", "-n", "zipped"], check=True,
                             capture_output=True, text=True).stdout.split()[0]
    listed = subprocess.run([*base, "layers"], check=True, capture_output=True, text=True).stdout
    assert listed.splitlines()[:2] == [created, "\tname: zipped"]
    plugins = subprocess.run([str(binary), "plugins"], check=True, capture_output=True, text=True)
    assert "vfs: loaded" in plugins.stdout
