"""Progress lines appear on a terminal's stderr only."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from pathlib import Path

from cs_core.cli.progress import ProgressLine, make_progress

from .conftest import CLI


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_no_progress_when_not_a_terminal() -> None:
    assert make_progress("applied", 10, io.StringIO()) is None


def test_progress_line_redraws_and_finishes() -> None:
    term = _Terminal()
    line = make_progress("applied", 4 * 1024 * 1024, term)
    assert isinstance(line, ProgressLine)
    line(2 * 1024 * 1024)
    line.finish()
    text = term.getvalue()
    assert "\r\x1b[K" in text and "applied 2.0 MiB of 4.0 MiB (50%)" in text and text.endswith("\n")


def _big_tar(path: Path) -> None:
    with tarfile.open(path, "w") as tar:
        data = os.urandom(8 * 1024 * 1024)
        info = tarfile.TarInfo("blob")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))


def test_import_layer_shows_progress_on_a_tty(cli: CLI, tmp_path: Path) -> None:
    tar = tmp_path / "big.tar"
    _big_tar(tar)
    master, slave = os.openpty()
    try:
        proc = subprocess.run([*cli.base(), "import-layer", "-f", str(tar)], stdout=subprocess.PIPE,
                              stderr=slave, timeout=120)
        os.close(slave)
        slave = -1
        chunks = []
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        if slave >= 0:
            os.close(slave)
        os.close(master)
    assert proc.returncode == 0
    shown = b"".join(chunks).decode()
    assert "applied" in shown and "MiB" in shown
    assert len(proc.stdout.decode().split("\n")[0]) == 64  # stdout stays clean: just the ID
    # Without a terminal, stderr stays empty.
    r = cli("import-layer", "-f", str(tar))
    assert r.rc == 0 and r.err == ""
