"""Installs the third-party packages with pip for this test session: the driver guide's
example (docs/examples/cs_tinydriver) and a deliberately broken plugin.

They go into a session directory put on ``sys.path`` (and ``PYTHONPATH`` for child
processes) rather than into the shared venv: other sessions running tests at the same time
must not see a deliberately broken plugin appear and disappear under them. Discovery is the
same as for a venv install: ``importlib.metadata`` reads the installed dist-info.
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE.parents[1] / "docs" / "examples"
SOURCES = {"cs_tinydriver": EXAMPLES / "cs_tinydriver", "cs_brokenplugin": HERE / "cs_brokenplugin"}
PACKAGES = tuple(SOURCES)


@pytest.fixture(scope="session")
def thirdparty_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """pip-install the packages once per session into a directory of their own."""
    work = tmp_path_factory.mktemp("thirdparty")
    site = work / "site"
    for package in PACKAGES:
        # Build from a copy: setuptools writes egg-info next to the sources it builds.
        source = work / "src" / package
        shutil.copytree(SOURCES[package], source)
        done = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
             "--target", str(site), str(source)],
            capture_output=True, text=True,
        )
        assert done.returncode == 0, f"pip install {package} failed:\n{done.stderr}"
    return site


@pytest.fixture(scope="module")
def thirdparty_site(thirdparty_build: Path) -> Iterator[Path]:
    """The packages visible to this module's tests (and their child processes) only.

    Module scope, so that tests collected later in the session (other drivers' suites,
    CLI listings) never see the extra plugins.
    """
    site = str(thirdparty_build)
    sys.path.insert(0, site)
    importlib.invalidate_caches()
    old_pythonpath = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [site, old_pythonpath]))
    try:
        yield thirdparty_build
    finally:
        sys.path.remove(site)
        if old_pythonpath is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = old_pythonpath
        for name in [m for m in sys.modules if m.split(".")[0] in PACKAGES]:
            del sys.modules[name]
        importlib.invalidate_caches()
