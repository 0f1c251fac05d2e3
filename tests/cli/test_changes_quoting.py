"""`changes` quotes each path as Go's %q does, control characters and all, byte for byte."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from cs_core.testing.gocli import GoCLI

from .conftest import CLI

pytestmark = pytest.mark.interop

# Every ASCII control character, the quote, the backslash, DEL, a non-ASCII letter and an
# undecodable byte: Go names \a \b \f \n \r \t \v, and writes the rest as \x.. or as-is.
NAMES = [f"c{code:02x}-" + chr(code) for code in range(1, 32)] + [
    'quote"', "back\\slash", "del\x7f", "caf\u00e9", "plain name", "bad\udcff",
]


def _tar(names: list[str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT, encoding="utf-8",
                      errors="surrogateescape") as tar:
        for name in names:
            info = tarfile.TarInfo(name)
            info.size = 1
            tar.addfile(info, io.BytesIO(b"x"))
    return buf.getvalue()


def test_changes_quotes_paths_as_go(tmp_path: Path) -> None:
    go = GoCLI(tmp_path / "go", tmp_path / "gorun", "vfs")
    ours = CLI(tmp_path / "g", tmp_path / "r", "vfs")
    layer = tmp_path / "layer.tar"
    layer.write_bytes(_tar(NAMES))
    go.run("create-layer", "--id", "layer")
    ours.ok("create-layer", "--id", "layer")
    go.run("applydiff", "--file", str(layer), "layer")
    ours.ok("applydiff", "--file", str(layer), "layer")
    # Go walks a map on vfs: its order varies from run to run, the lines do not.
    theirs = sorted(go.run("changes", "layer").stdout.splitlines(keepends=True))
    mine = ours("changes", "layer").raw
    assert sorted(mine.splitlines(keepends=True)) == theirs
    assert b'Add "/c07-\\a"\n' in mine and b'Add "/c1b-\\x1b"\n' in mine
