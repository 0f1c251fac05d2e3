"""The suite's own settings: a hung test fails alone instead of eating CI's budget."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_every_test_has_a_timeout(request: pytest.FixtureRequest) -> None:
    assert request.config.pluginmanager.hasplugin("timeout"), "pytest-timeout is not installed"
    assert float(request.config.getini("timeout")) >= 60


def test_a_hanging_test_fails_on_its_own(tmp_path: Path) -> None:
    # The project's own ini (its timeout), a shorter per-run value, and a test that hangs.
    (tmp_path / "test_hang.py").write_text(textwrap.dedent("""
        import time

        def test_hangs():
            time.sleep(600)

        def test_after():
            pass
    """))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-c", str(REPO / "pyproject.toml"), "--rootdir",
         str(tmp_path), "-p", "no:cacheprovider", "--timeout=3", "-q", str(tmp_path)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert "1 failed, 1 passed" in proc.stdout, proc.stdout + proc.stderr
    assert "Timeout" in proc.stdout
