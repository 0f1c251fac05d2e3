"""Progress lines appear on a terminal's stderr only."""

from __future__ import annotations

import gzip
import io
import os
import re
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


def test_progress_line_takes_running_totals_and_shows_rate_and_eta() -> None:
    term = _Terminal()
    line = make_progress("applied", 4 * 1024 * 1024, term)
    assert isinstance(line, ProgressLine)
    line(1024 * 1024)
    line(2 * 1024 * 1024)  # a running total, not an increment: the line says 2, not 3
    assert "2.0 MiB / 4.0 MiB  50%" in line.text(1.0)
    assert "2.0 MiB/s" in line.text(1.0) and "ETA 0:01" in line.text(1.0)
    assert "[##########..........]" in line.text(1.0)
    line.finish()
    text = term.getvalue()
    assert text.startswith("\r\x1b[K") and text.endswith("\n")


def test_progress_line_without_total_shows_bytes_and_rate() -> None:
    line = ProgressLine("wrote", None, _Terminal())
    line(3 * 1024 * 1024)
    assert line.text(2.0) == "wrote  3.0 MiB  1.5 MiB/s"


def test_quiet_means_no_line_even_on_a_terminal() -> None:
    assert make_progress("applied", 10, _Terminal(), quiet=True) is None


def _big_tar(path: Path) -> None:
    with tarfile.open(path, "w") as tar:
        data = os.urandom(8 * 1024 * 1024)
        info = tarfile.TarInfo("blob")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))


def on_pty(cmd: list[str]) -> tuple[int, str, str]:
    """Run ``cmd`` with stderr on a pseudo-terminal: its exit code, stdout, and what the
    terminal showed."""
    master, slave = os.openpty()
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=slave)
        os.close(slave)
        slave = -1
        chunks = []
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the last writer closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        stdout = proc.stdout.read() if proc.stdout else b""
        rc = proc.wait(timeout=120)
    finally:
        if slave >= 0:
            os.close(slave)
        os.close(master)
    return rc, stdout.decode(), b"".join(chunks).decode()


_PERCENT = re.compile(r"(\d+)%")


def _assert_bar(shown: str, verb: str) -> None:
    assert verb in shown and "MiB/s" in shown and "[" in shown, shown
    percents = [int(p) for p in _PERCENT.findall(shown)]
    assert percents and max(percents) == 100, shown  # never "2.3 GiB of 300 MiB (100%)"
    assert shown.endswith("\n")


def test_import_layer_shows_progress_on_a_tty(cli: CLI, tmp_path: Path) -> None:
    tar = tmp_path / "big.tar"
    _big_tar(tar)
    rc, stdout, shown = on_pty([*cli.base(), "import-layer", "-f", str(tar)])
    assert rc == 0
    _assert_bar(shown, "applied")
    assert len(stdout.split("\n")[0]) == 64  # stdout stays clean: just the ID
    # Without a terminal, stderr stays empty.
    r = cli("import-layer", "-f", str(tar))
    assert r.rc == 0 and r.err == ""


def test_applydiff_of_gzip_counts_the_compressed_file(cli: CLI, tmp_path: Path) -> None:
    tar = tmp_path / "big.tar"
    _big_tar(tar)
    gz = tmp_path / "big.tar.gz"
    gz.write_bytes(gzip.compress(tar.read_bytes(), compresslevel=1))
    layer = cli.ok("create-layer").strip()
    rc, _, shown = on_pty([*cli.base(), "applydiff", "-f", str(gz), layer])
    assert rc == 0
    _assert_bar(shown, "applied")
    assert f"{gz.stat().st_size / 1024 / 1024:.1f} MiB / " in shown
    other = cli.ok("create-layer").strip()
    rc, _, shown = on_pty([*cli.base(), "applydiff", "--quiet", "-f", str(gz), other])
    assert rc == 0 and shown == ""


def test_diff_shows_a_bar_on_a_tty_and_nothing_on_a_pipe(cli: CLI, tmp_path: Path) -> None:
    tar = tmp_path / "big.tar"
    _big_tar(tar)
    layer = cli.ok("import-layer", "-f", str(tar)).split()[0]
    rc, _, shown = on_pty([*cli.base(), "diff", "-u", "-f", str(tmp_path / "out.tar"), layer])
    assert rc == 0
    _assert_bar(shown, "wrote")
    assert (tmp_path / "out.tar").read_bytes() == tar.read_bytes()
    rc, _, shown = on_pty([*cli.base(), "diff", "-q", "-u", "-f", str(tmp_path / "q.tar"), layer])
    assert rc == 0 and shown == ""
    r = cli("diff", "-u", "-f", str(tmp_path / "p.tar"), layer)
    assert r.rc == 0 and r.err == ""


def test_image_export_and_import_show_a_bar_per_layer(cli: CLI, tmp_path: Path) -> None:
    import json

    from cs_core.images.source import sha256_of

    tar = tmp_path / "big.tar"
    _big_tar(tar)
    layer = cli.ok("import-layer", "-f", str(tar)).split()[0]
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {
        "type": "layers", "diff_ids": [sha256_of(tar.read_bytes())]}}).encode()
    (tmp_path / "config.json").write_bytes(config)
    image = sha256_of(config).partition(":")[2]
    cli.ok("create-image", "--id", image, layer)
    cli.ok("set-image-data", "-f", str(tmp_path / "config.json"), image, f"sha256:{image}")
    rc, _, shown = on_pty([*cli.base(), "export-image", "--compress", "none", image,
                           f"oci:{tmp_path / 'oci'}"])
    assert rc == 0, shown
    _assert_bar(shown, "exporting 1/1")
    other = CLI(tmp_path / "g2", tmp_path / "r2", cli.driver)
    try:
        rc, _, shown = on_pty([*other.base(), "import-image", f"oci:{tmp_path / 'oci'}", "big"])
        assert rc == 0, shown
        _assert_bar(shown, "importing 1/1")
        rc, _, shown = on_pty([*other.base(), "export-image", "-q", "big",
                               f"oci:{tmp_path / 'oci2'}"])
        assert rc == 0 and shown == ""
        r = other("import-image", f"oci:{tmp_path / 'oci'}", "again")
        assert r.rc == 0 and r.err == ""
    finally:
        other("shutdown", "-f")
