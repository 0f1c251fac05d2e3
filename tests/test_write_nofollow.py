"""Files the store writes in place are never written through a symlink planted where they go.

Records, big data, tar-split and mountpoints.json are replaced by rename (which replaces a
symlink instead of following it); lock files and the space reserve were opened with
O_NOFOLLOW already. What remained were files written in place: the overlay driver's probe
results in the run root, its flag and link files, btrfs quota files, staging locks.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from cs_core.testing import require_privileged


def test_overlay_probe_result_is_not_written_through_a_dangling_symlink(tmp_path: Path) -> None:
    require_privileged("the overlay driver mounts")
    from cs_overlay.testing import unmount_all_under

    outside = tmp_path / "outside"
    outside.mkdir()
    run_home = tmp_path / "r" / "overlay"
    run_home.mkdir(parents=True, mode=0o700)
    (tmp_path / "r").chmod(0o700)
    # Dangling, so reading the cached result finds nothing and the probe's result is written.
    (run_home / "overlay-true").symlink_to(outside / "created")
    base = [sys.executable, "-m", "cs_core", "-g", str(tmp_path / "g"), "-R", str(tmp_path / "r"),
            "-s", "overlay"]
    try:
        proc = subprocess.run([*base, "layers"], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert not (outside / "created").exists()
        assert (run_home / "overlay-true").is_symlink()  # left alone; the probe runs next time
    finally:
        subprocess.run([*base, "shutdown"], capture_output=True, timeout=120)
        unmount_all_under(tmp_path)
