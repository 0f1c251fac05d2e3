"""A plugin whose import fails, installed beside vfs, breaks nothing but itself."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cs_core.drivers.plugins import PluginRegistry
from cs_core.errors import PluginError


@pytest.fixture(autouse=True)
def _installed(thirdparty_site: Path) -> None:
    """Every test here needs the packages installed."""


def test_registry_still_gives_vfs() -> None:
    registry = PluginRegistry()
    assert "broken" in registry.plugins
    assert registry.driver_class("vfs").name == "vfs"
    drivers = registry.drivers()  # loads every plugin, the broken one included
    assert {"vfs", "tiny"} <= set(drivers) and "broken" not in drivers
    error = registry.plugins["broken"].error
    assert error is not None and "cs_brokenplugin_missing_dependency" in error


def test_selecting_it_names_the_plugin() -> None:
    with pytest.raises(PluginError) as caught:
        PluginRegistry().driver_class("broken")
    message = str(caught.value)
    assert "'broken'" in message and "failed to load" in message
    assert "ModuleNotFoundError" in message and "\n" not in message


def _cli(*args: str, root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from cs_core.cli.main import main; main()",
         "--graph", str(root / "graph"), "--run", str(root / "run"), *args],
        capture_output=True, text=True, env=dict(os.environ), timeout=120,
    )


def test_cli_works_beside_it(tmp_path: Path) -> None:
    made = _cli("--storage-driver", "vfs", "create-layer", root=tmp_path)
    assert made.returncode == 0, made.stderr
    listed = _cli("--storage-driver", "vfs", "layers", root=tmp_path)
    assert listed.returncode == 0 and made.stdout.strip() in listed.stdout
    plugins = _cli("plugins", root=tmp_path)
    assert plugins.returncode == 0
    assert "broken: error (cs-brokenplugin 0.1.0; cs_brokenplugin.hooks)" in plugins.stdout
    assert "vfs: loaded" in plugins.stdout


def test_cli_names_it_when_selected(tmp_path: Path) -> None:
    done = _cli("--storage-driver", "broken", "layers", root=tmp_path)
    assert done.returncode != 0
    # Like Go's "error initializing: ..." the message goes to stdout, on one line.
    output = done.stdout + done.stderr
    assert "Traceback" not in output
    [line] = [text for text in output.splitlines() if "broken" in text]
    assert line.startswith("error initializing: ") and "plugin 'broken' failed to load" in line
