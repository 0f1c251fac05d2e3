"""Lock files: Go's token layout, counted holds, and exclusion across processes."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from cs_core import lockfile


def test_token_layout_matches_go() -> None:
    before = time.time_ns()
    token = lockfile.new_token()
    stamp, counter, pid = struct.unpack("<QQI", token[:20])
    assert len(token) == 64
    assert before <= stamp <= time.time_ns()
    assert pid == os.getpid()
    assert counter > 0
    assert lockfile.new_token() != token


def test_one_object_per_path_and_counted_holds(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    lock = lockfile.get(path)
    assert lockfile.get(str(path)) is lock
    with lock.read_locked(), lock.read_locked():
        assert lock.locked and not lock.locked_for_writing
    assert not lock.locked
    with lock.write_locked():
        token = lock.record_write()
        assert lock.read_token() == token
    assert path.stat().st_size == 64
    assert oct(path.stat().st_mode & 0o777) == oct(0o644)


def _holder(path: Path, mode: str) -> subprocess.Popen[str]:
    code = textwrap.dedent(f"""
        import fcntl, os, sys, time
        fd = os.open({str(path)!r}, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.lockf(fd, fcntl.LOCK_{'EX' if mode == 'w' else 'SH'})
        print("locked", flush=True)
        sys.stdin.readline()
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


def test_writer_waits_for_another_process(tmp_path: Path) -> None:
    path = tmp_path / "w.lock"
    lock = lockfile.get(path)
    holder = _holder(path, "w")
    assert not lock.try_lock()
    assert holder.stdin is not None
    started = time.monotonic()
    import threading

    threading.Timer(0.3, lambda: (holder.stdin.write("\n"), holder.stdin.flush())).start()  # type: ignore[union-attr]
    with lock.write_locked():
        waited = time.monotonic() - started
    holder.wait(5)
    assert waited >= 0.25


def test_readers_share(tmp_path: Path) -> None:
    path = tmp_path / "r.lock"
    lock = lockfile.get(path)
    holder = _holder(path, "r")
    try:
        started = time.monotonic()
        with lock.read_locked():
            assert time.monotonic() - started < 1
        assert not lock.try_lock()
    finally:
        assert holder.stdin is not None
        holder.stdin.write("\n")
        holder.stdin.close()
        holder.wait(5)


def test_go_cli_waits_for_our_write_lock(tmp_path: Path) -> None:
    """The Go CLI must block on a layer-store lock we hold: the locks really are shared."""
    from cs_core.testing import go_cli_path

    g, r = tmp_path / "g", tmp_path / "r"
    go = go_cli_path()
    subprocess.run([go, "-g", g, "-R", r, "-s", "vfs", "layers"], check=True, capture_output=True)
    lock = lockfile.get(g / "vfs-layers" / "layers.lock")
    with lock.write_locked():
        proc = subprocess.Popen([go, "-g", g, "-R", r, "-s", "vfs", "create-layer"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(1.0)
        assert proc.poll() is None, "Go did not wait for our lock"
        token = lock.read_token()
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    with lock.read_locked():
        assert lock.read_token() != token  # Go recorded its write


def test_a_symlink_at_a_lock_path_is_not_written_through(tmp_path: Path) -> None:
    import errno

    from cs_core import lockfile

    victim = tmp_path / "victim"
    victim.write_bytes(b"keep me")
    link = tmp_path / "planted.lock"
    link.symlink_to(victim)
    with pytest.raises(OSError) as info:
        lock = lockfile.get(link)
        with lock.write_locked():
            lock.record_write()
    assert info.value.errno == errno.ELOOP
    assert victim.read_bytes() == b"keep me"
