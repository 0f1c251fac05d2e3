"""``bench/run --quick``: every section runs end to end against both CLIs and reports its targets.

No timing is asserted (toy sizes on a shared machine): what must hold is that each script is
found, called with arguments it accepts, measures both CLIs and yields verdict lines, and that
its loop filesystems are gone afterwards.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from cs_core.testing import go_cli_path, require_privileged, requires_command

BENCH = Path(__file__).resolve().parent.parent / "bench"


def _mounts_under(root: Path) -> set[str]:
    with open("/proc/self/mountinfo") as f:
        return {point for line in f if (point := line.split()[4]).startswith(f"{root}/")}


@pytest.mark.timeout(900)
def test_bench_run_quick_reaches_every_section() -> None:
    require_privileged("the benchmarks make loop filesystems")
    go_cli_path()
    requires_command("mkfs.ext4", "mkfs.btrfs", "tar", "gzip", "zstd")
    # The scripts make their loop filesystems under TMPDIR: a private one tells theirs apart
    # from those of anything else running on the machine.
    scratch = Path(tempfile.mkdtemp(prefix="cs-bench-"))
    try:
        proc = subprocess.run([sys.executable, str(BENCH / "run"), "--quick"], capture_output=True,
                              text=True, timeout=880, env={**os.environ, "TMPDIR": str(scratch)})
        left = _mounts_under(scratch)
    finally:
        if not _mounts_under(scratch):
            shutil.rmtree(scratch, ignore_errors=True)
    out = proc.stdout
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "error (traceback above)" not in out, proc.stderr[-3000:]
    summary = out.split("===== summary", 1)[1].splitlines()
    def lines(section: str) -> list[str]:
        return [line for line in summary if line.startswith(f"[{section}] ")]

    # startup.py's table: the light commands, the creates, mount+unmount and the zipapp.
    startup = lines("startup")
    assert len(startup) == 10 and all(line.endswith(("pass", "FAIL")) for line in startup), startup
    assert any("NOT met" in line or line.endswith(": met") for line in lines("growth")), summary
    for driver in ("vfs", "overlay"):
        imports = lines(f"applydiff ({driver})")
        assert len(imports) == 5 and all(f"({driver})" in line for line in imports), imports
        assert all(" pass" in line or " FAIL" in line for line in imports), imports
    content = lines("content")
    for driver in ("vfs", "overlay", "btrfs"):
        for command in ("changes", "diff", "diffsize"):
            assert any(line.startswith(f"[content] {command} ({driver}) ") for line in content), content
    assert len(lines("contention")) == 1
    assert summary[-1] in ("all targets met", "some targets missed")
    assert (proc.returncode == 0) == (summary[-1] == "all targets met")
    assert left == set()
