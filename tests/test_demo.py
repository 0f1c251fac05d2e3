"""README command 1: scripts/demo runs its whole job, here against a throw-away store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cs_core.testing import require_privileged, requires_command

DEMO = Path(__file__).resolve().parents[1] / "scripts" / "demo"


def _run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    # Our console script sits beside the interpreter running the tests (venv or tox env).
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return subprocess.run([str(DEMO), *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PATH": path, **env})


@pytest.mark.parametrize("driver", ["vfs", "overlay"])
def test_demo_imports_mounts_diffs_and_exports_a_busybox_image(tmp_path: Path, driver: str) -> None:
    require_privileged("the demo's image holds root-owned files")
    requires_command("busybox", "python3")
    graph, run = tmp_path / "graph", tmp_path / "run"
    proc = _run("--graph", str(graph), "--run", str(run), CS_DEMO_DRIVER=driver)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "== import-image oci:" in out
    for change in ('Add "/etc/greeting"', 'Modify "/etc/motd"', 'Delete "/bin/ls"'):
        assert change in out, out
    assert "is identical to the imported tar" in out
    assert "exported config sha256:" in out and out.rstrip().endswith("done")
    # It used the store it was given, and left it as it found it (empty).
    for records in (f"{driver}-images/images.json", f"{driver}-containers/containers.json",
                    f"{driver}-layers/layers.json"):
        assert json.loads((graph / records).read_text()) == [], records
    # ...and mounted nothing there (overlay's private mount of its home included).
    assert str(graph) not in Path("/proc/self/mountinfo").read_text()


def test_demo_without_busybox_says_what_to_install(tmp_path: Path) -> None:
    proc = _run("--graph", str(tmp_path / "g"), "--run", str(tmp_path / "r"),
                BUSYBOX=str(tmp_path / "absent"))
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "demo: needs a static busybox (apt-get install busybox-static, or BUSYBOX=/path)"]
    assert not (tmp_path / "g").exists()
