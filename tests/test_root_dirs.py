"""Graph and run roots someone else could tamper with are refused, in one line; ours are not.

Through our CLI on real directories: a world-writable run root, one owned by another user, a
path through another user's symlink, and a world-writable parent without the sticky bit.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from cs_core.testing import require_privileged

NOBODY = 65534


def _cli(graph: Path, run: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cs_core", "-g", str(graph), "-R", str(run),
                           "-s", "vfs", *args], capture_output=True, text=True, timeout=120)


def _refused(proc: subprocess.CompletedProcess[str], *words: str) -> None:
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error initializing: "), lines
    assert "Traceback" not in proc.stderr
    for word in words:
        assert word in lines[0], lines[0]


def test_world_writable_run_root_is_refused(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    os.chmod(run, 0o777)
    proc = _cli(tmp_path / "graph", run, "layers")
    _refused(proc, f"run root {run}", "writable by group or others", "0777", "chmod go-w")
    assert not list(run.iterdir())  # nothing written before the refusal
    os.chmod(run, 0o755)
    assert _cli(tmp_path / "graph", run, "layers").returncode == 0


def test_group_writable_graph_root_is_refused(tmp_path: Path) -> None:
    graph = tmp_path / "graph"
    graph.mkdir()
    os.chmod(graph, 0o770)
    _refused(_cli(graph, tmp_path / "run", "layers"), f"graph root {graph}", "0770")


def test_root_under_a_world_writable_dir_without_sticky_bit_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)  # anyone could rename our run root away and put a symlink there
    _refused(_cli(tmp_path / "graph", shared / "run", "layers"), f"inside {shared}")
    assert not (shared / "run").exists()  # not even created
    os.chmod(shared, 0o1777)  # /tmp's mode: others cannot touch our entries
    assert _cli(tmp_path / "graph", shared / "run", "layers").returncode == 0


def test_own_roots_are_accepted(tmp_path: Path) -> None:
    for mode in (0o700, 0o750, 0o755):
        graph, run = tmp_path / f"g{mode:o}", tmp_path / f"r{mode:o}"
        graph.mkdir(mode)
        run.mkdir(mode)
        proc = _cli(graph, run, "layers")
        assert proc.returncode == 0, proc.stdout + proc.stderr
    # A symlink of our own on the way is fine; so is a fresh path made under a 0755 parent.
    (tmp_path / "link").symlink_to(tmp_path / "g755")
    assert _cli(tmp_path / "link", tmp_path / "new" / "run", "layers").returncode == 0


def test_run_root_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    require_privileged("chown to another user needs root")
    run = tmp_path / "run"
    run.mkdir(mode=0o700)
    os.chown(run, NOBODY, NOBODY)
    _refused(_cli(tmp_path / "graph", run, "layers"), f"owned by UID {NOBODY}",
             f"chown {os.geteuid()}")
    assert not list(run.iterdir())


def test_path_through_another_users_symlink_is_refused(tmp_path: Path) -> None:
    require_privileged("chown to another user needs root")
    mine = tmp_path / "mine"
    mine.mkdir(mode=0o700)
    link = tmp_path / "link"  # e.g. planted in /tmp by someone else, pointing at our directory
    link.symlink_to(mine)
    os.lchown(link, NOBODY, NOBODY)
    _refused(_cli(link, tmp_path / "run", "layers"), f"symlink {link}", f"UID {NOBODY}")
    assert not list(mine.iterdir())
