"""docs/quickstart.md's commands and Python example run as written, on the image
scripts/busybox-oci builds."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import pytest

from cs_core.testing import require_privileged, requires_command

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "docs" / "quickstart.md"
# The page's store lives under /tmp/qs; the test's under its own temporary directory.
PAGE_DIR = "/tmp/qs"
# Lines of the shell blocks not run here: installs (the test environment has them), and
# `podman run`, since runc cannot set a container's rlimits inside this sandbox.
NOT_RUN = re.compile(r"^(pip install|apt-get|pm run)\b")


def shell_example() -> str:
    blocks = re.findall(r"```sh\n(.*?)```", QUICKSTART.read_text(), re.S)
    lines = [line for block in blocks for line in block.splitlines() if not NOT_RUN.match(line)]
    return "\n".join(lines).replace("scripts/busybox-oci", str(ROOT / "scripts" / "busybox-oci"))


def expected_changes() -> list[str]:
    match = re.search(r"```text\n(Modify.*?)```", QUICKSTART.read_text(), re.S)
    assert match, "quickstart lost its changes output"
    return match[1].splitlines()


def python_example() -> str:
    text = QUICKSTART.read_text()
    section = text[text.index("## The same from Python"):]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "quickstart lost its Python example"
    return match[1]


def test_quickstart_python_example_runs(tmp_path: Path) -> None:
    require_privileged("the image holds root-owned files")
    requires_command("busybox")
    subprocess.run([sys.executable, str(ROOT / "scripts" / "busybox-oci"), "busybox"],
                   cwd=tmp_path, check=True, capture_output=True)
    code = python_example()
    assert PAGE_DIR in code
    proc = subprocess.run([sys.executable, "-c", code.replace(PAGE_DIR, str(tmp_path))],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].endswith("('docker.io/library/busybox:latest',)")
    assert "/etc/greeting" in "\n".join(lines[1:])
    with tarfile.open(tmp_path / "web2.tar") as diff:
        assert "etc/greeting" in diff.getnames()
    with tarfile.open(tmp_path / "busybox-out.tar") as exported:
        index = json.load(exported.extractfile("index.json"))  # type: ignore[arg-type]
    assert index["manifests"][0]["mediaType"] == "application/vnd.oci.image.manifest.v1+json"


def test_quickstart_commands_run(request: pytest.FixtureRequest) -> None:
    require_privileged("the image holds root-owned files")
    requires_command("busybox", "podman", "skopeo")
    # podman refuses a run root over 50 characters, and pytest's tmp_path under tox is longer.
    tmp_path = Path(tempfile.mkdtemp(prefix="qs-", dir="/tmp"))
    request.addfinalizer(lambda: shutil.rmtree(tmp_path, ignore_errors=True))
    script = shell_example()
    assert PAGE_DIR in script and "import-image" in script
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", script.replace(PAGE_DIR, str(tmp_path))],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PATH": path})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout.splitlines()
    changes = expected_changes()
    start = out.index(changes[0])
    assert out[start:start + len(changes)] == changes
    assert any(line.startswith("docker.io/library/busybox") for line in out)  # podman images
    with tarfile.open(tmp_path / "web.tar") as diff:
        assert {"etc/greeting", "bin/.wh.vi"} <= set(diff.getnames())
    assert json.loads(proc.stdout[proc.stdout.index("{"):])["Architecture"]  # skopeo inspect
