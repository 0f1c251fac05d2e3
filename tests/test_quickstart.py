"""docs/quickstart.md's Python example runs as written, on the image scripts/busybox-oci builds."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tarfile
from pathlib import Path

from cs_core.testing import require_privileged, requires_command

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "docs" / "quickstart.md"
# The page's store lives under /tmp/qs; the test's under its own temporary directory.
PAGE_DIR = "/tmp/qs"


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
