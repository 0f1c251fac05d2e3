"""Junk fed to applydiff / import-layer fails as Go's does (upstream's tests/apply-junk.bats).

Go's tar reader says ``archive/tar: invalid tar header`` when bytes are there but no header
parses and ``unexpected EOF`` when the stream ends early. Go extracts in a re-exec'd helper,
so the text reaches the user wrapped: on vfs (and btrfs, the same naive driver) as
``ApplyLayer stdout:  stderr: ... exit status 1``, logged first as "While applying layer: ...";
on overlay as ``processing tar file(...): exit status 1`` with no log line. Ours prints the
same lines; only the timestamp of the log line may differ.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from cs_core.testing import require_privileged
from cs_core.testing.gocli import GoCLI

from .conftest import CLI, unmount_under

pytestmark = pytest.mark.interop

_OS_RELEASE = Path("/etc/os-release").read_bytes()[:400]  # < 512 bytes: no whole header
_SHORT = b"sorry, not even enough info for a tar header here\n"
_NOT_A_HEADER = b"this is not a tar stream at all\n" * 40  # 1280 bytes


def _compress(tool: str, data: bytes) -> bytes:
    if tool == "cat":
        return data
    path = shutil.which(tool)
    if path is None:
        from cs_core.testing import requires_command

        requires_command(tool)
    return subprocess.run([str(path), "-c"], input=data, capture_output=True, check=True).stdout


def _lines(stderr: str) -> list[str]:
    """stderr's lines, with the log lines' timestamps (not their presence) blanked."""
    return re.sub(r'^time="[^"]*" ', 'time="T" ', stderr, flags=re.M).splitlines()


def _go_says(driver: str, error: str) -> list[str]:
    if driver == "overlay":
        return [f"processing tar file({error}): exit status 1"]
    wrapped = f"ApplyLayer stdout:  stderr: {error} exit status 1"
    return [f'time="T" level=error msg="While applying layer: {wrapped}"', wrapped]


@pytest.fixture(params=["vfs", "overlay"])
def twins(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[GoCLI, CLI]]:
    driver: str = request.param
    if driver != "vfs":
        require_privileged(f"the {driver} driver needs root")
    go = GoCLI(tmp_path / "go", tmp_path / "gorun", driver)
    ours = CLI(tmp_path / "g", tmp_path / "r", driver)
    try:
        yield go, ours
    finally:
        ours("shutdown", "-f")
        go.run("shutdown", "-f", check=False)
        unmount_under(tmp_path)


@pytest.mark.parametrize("tool", ["cat", "gzip", "bzip2", "xz", "zstd"])
@pytest.mark.parametrize(("content", "expected"), [
    (_OS_RELEASE, "unexpected EOF"), (_SHORT, "unexpected EOF"),
    (_NOT_A_HEADER, "archive/tar: invalid tar header"),
])
def test_applydiff_of_junk_reads_as_go(twins: tuple[GoCLI, CLI], tmp_path: Path, tool: str,
                                       content: bytes, expected: str) -> None:
    go, ours = twins
    junk = tmp_path / "junkfile"
    junk.write_bytes(_compress(tool, content))
    go.run("create-layer", "--id", "layer")
    ours.ok("create-layer", "--id", "layer")
    theirs = go.run("applydiff", "--file", str(junk), "layer", check=False)
    mine = ours("applydiff", "--file", str(junk), "layer")
    assert (mine.rc, mine.out) == (theirs.returncode, "") == (1, "")
    assert _lines(mine.err) == _lines(theirs.stderr.decode()) == _go_says(ours.driver, expected)
    # The layer is still there, empty, and takes a real diff afterwards.
    tar = tmp_path / "good.tar"
    subprocess.run(["tar", "-cf", str(tar), "-C", str(tmp_path), "junkfile"], check=True)
    ours.ok("applydiff", "--file", str(tar), "layer")
    assert ours.ok("changes", "layer") == 'Add "/junkfile"\n'


def test_import_layer_of_junk_reads_as_go(twins: tuple[GoCLI, CLI], tmp_path: Path) -> None:
    go, ours = twins
    junk = tmp_path / "junk.gz"
    junk.write_bytes(_compress("gzip", _NOT_A_HEADER))
    theirs = go.run("import-layer", "-f", str(junk), check=False)
    mine = ours("import-layer", "-f", str(junk))
    assert (mine.rc, mine.out) == (theirs.returncode, "") == (1, "")
    assert _lines(mine.err) == _lines(theirs.stderr.decode())
    assert _go_says(ours.driver, "archive/tar: invalid tar header") == _lines(mine.err)
    assert ours.ok("layers") == ""


def test_failed_applydiff_says_what_happened(cli: CLI, tmp_path: Path) -> None:
    junk = tmp_path / "junk"
    junk.write_bytes(_SHORT)
    cli.ok("create-layer", "--id", "layer")
    r = cli("--debug", "applydiff", "--file", str(junk), "layer")
    assert r.rc == 1
    assert "interrupted applydiff" not in r.err  # nothing was interrupted: the diff was bad
    assert 'Applying the diff to layer \\"layer\\" failed, layer reset to empty' in r.err
    r = cli("--debug", "layers")
    assert r.rc == 0 and "interrupted" not in r.err
