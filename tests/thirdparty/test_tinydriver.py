"""The driver guide's example package (docs/examples/cs_tinydriver), installed by pip, passes
the suite: in this process, and through its own tests as its author runs them."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import pytest

from cs_core.drivers.plugins import PluginRegistry
from cs_core.testing.conformance import GraphDriverConformance


@pytest.fixture(autouse=True)
def _installed(thirdparty_site: Path) -> None:
    """Every test here needs the packages installed."""


def test_found_through_its_entry_point(thirdparty_site: Path) -> None:
    dist = metadata.distribution("cs-tinydriver")
    assert Path(str(dist.locate_file(""))).resolve() == thirdparty_site.resolve()
    registry = PluginRegistry()
    info = registry.plugins["tiny"]
    assert (info.distribution, info.module, info.loaded) == ("cs-tinydriver", "cs_tinydriver.hooks",
                                                            False)
    cls = registry.driver_class("tiny")
    assert cls.__module__ == "cs_tinydriver.driver" and info.drivers == ["tiny"]


class TestTinyConformance(GraphDriverConformance):
    driver_name = "tiny"


def test_cli_uses_the_installed_driver(tmp_path: Path) -> None:
    import io
    import os
    import subprocess
    import sys
    import tarfile

    base = [sys.executable, "-c", "from cs_core.cli.main import main; main()",
            "-g", str(tmp_path / "graph"), "-R", str(tmp_path / "run"), "-s", "tiny"]

    def cli(*args: str, data: bytes | None = None) -> bytes:
        done = subprocess.run([*base, *args], input=data, capture_output=True,
                              env=dict(os.environ), timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("hello")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"world"))
    layer = cli("create-layer").decode().strip()
    cli("applydiff", "--file", "/dev/stdin", layer, data=buf.getvalue())
    assert (tmp_path / "graph" / "tiny" / layer / "hello").read_bytes() == b"world"
    with tarfile.open(fileobj=io.BytesIO(cli("diff", "--uncompressed", layer))) as tar:
        assert tar.getnames() == ["hello"]
    assert layer in cli("layers").decode()
    assert "tiny: loaded (cs-tinydriver 0.1.0; cs_tinydriver.hooks)" in cli("plugins").decode()


def test_its_own_tests_pass_as_the_guide_runs_them(thirdparty_site: Path, tmp_path: Path) -> None:
    """docs/driver-guide.md's last step: ``pytest`` in the package directory."""
    import os
    import shutil
    import subprocess
    import sys

    project = tmp_path / "cs_tinydriver"
    shutil.copytree(Path(__file__).resolve().parents[2] / "docs" / "examples" / "cs_tinydriver",
                    project)
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           f"--basetemp={tmp_path / 'pt'}"], cwd=project, capture_output=True,
                          text=True, env=dict(os.environ), timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert " passed" in done.stdout and "failed" not in done.stdout
