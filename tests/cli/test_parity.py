"""Parity with the Go CLI: the script of ``parity.py`` on twin stores, outputs compared.

Every difference that remains is listed below with its reason; anything else fails.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from . import parity
from .conftest import available_driver, unmount_under

# Deliberate: we follow the newer Go CLI, or decline a defect of 1.43 (facts §8.3/§12).
NEWER_GO = {
    ("images extra", "exit code"), ("images extra", "out"), ("images extra", "err"),
    ("status extra", "exit code"), ("status extra", "out"), ("status extra", "err"),
    ("layers -- -t", "exit code"), ("layers -- -t", "out"), ("layers -- -t", "err"),
    ("layers -", "exit code"), ("layers -", "out"), ("layers -", "err"),
    # ^ newer Go: maxArgs 0 means "no arguments"; 1.43 treated it as unlimited.
    ("mount -r img1", "exit code"), ("mount -r img1", "out"), ("mount -r img1", "err"),
    ("unmount img1", "exit code"), ("unmount img1", "out"), ("unmount img1", "err"),
    # ^ 1.43 adds noexec,nosuid to read-only mounts, which vfs rejects; newer Go does not.
    ("version", "err"),  # 1.43 reports no version pairs; newer Go prints "Version: ..."
    ("mount", "err"), ("mount -h", "err"),  # newer Go's flag is --read-only (alias --ro, -r)
    ("delete-layer top", "exit code"), ("delete-layer top", "err"),
    # ^ 1.43 deletes a layer with children when named by name (facts §12.1); we refuse.
    ("layers", "out"),  # the layers listings after that refused deletion still show "top"
    ("copy /x", "exit code"), ("copy /x", "err"),
    # ^ 1.43 panics printing copy's usage (a flag with an empty name); we print the usage.
    ("status", "err"), ("status --json", "out"),
    # ^ driver status pairs: newer overlay adds "Supports shifting"/"Supports volatile".
}

# Error texts produced below the CLI that are not worth imitating:
STORE_MESSAGES = {
    (f"apply-diff -f {{F}}/junk.bin {parity.L4}", "err"),
    # ^ Go's text is its re-exec'd helper's stderr ("ApplyLayer stdout: stderr: archive/tar:
    #   invalid tar header exit status 1") plus a logrus line; ours names the tar defect.
}

KNOWN = NEWER_GO | STORE_MESSAGES


@pytest.mark.interop
def test_parity_script_is_long_enough() -> None:
    assert len(parity.STEPS) >= 150
    commands = {step.split(" ", 1)[0] for step in parity.STEPS}
    assert len(commands) >= 60


@pytest.mark.interop
def test_parity_with_go_cli(tmp_path: Path) -> None:
    from cs_core.testing import requires_command

    go_exe = shutil.which("containers-storage", path="/usr/bin:/usr/local/bin")
    if go_exe is None:
        requires_command("/usr/bin/containers-storage")
    assert go_exe is not None
    driver = available_driver()
    go = parity.Twin(["containers-storage"], tmp_path / "go", go_exe)
    ours = parity.Twin(parity.our_command(), tmp_path / "py")
    try:
        diffs = parity.compare(go, ours, tmp_path / "files", driver)
    finally:
        for twin in (go, ours):
            twin.run("shutdown -f", tmp_path / "files", driver)
        unmount_under(tmp_path)
    unexpected = [d for d in diffs if (d.step, d.what) not in KNOWN]
    report = "\n".join(f"== {d.step!r} ({d.what})\n-- go:\n{d.go}\n-- ours:\n{d.ours}"
                       for d in unexpected)
    assert not unexpected, f"{len(unexpected)} unexpected differences:\n{report}"
