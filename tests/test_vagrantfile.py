"""The Vagrantfile that brings up a VM for the privileged tests stays valid for both providers."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from cs_core.testing import requires_command

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("provider", ["libvirt", "virtualbox"])
def test_vagrant_validate(provider: str, tmp_path: Path) -> None:
    requires_command("vagrant")
    env = {**os.environ, "VAGRANT_PROVIDER": provider, "VAGRANT_HOME": str(tmp_path)}
    # No provider plugin is installed in CI: validate the file, not the provider setup.
    proc = subprocess.run(["vagrant", "validate", "--ignore-provider"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "validated successfully" in proc.stdout
