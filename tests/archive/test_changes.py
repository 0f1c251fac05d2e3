"""Changes between trees (Go ChangesDirs / OverlayChanges semantics) and the tars that carry them."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from cs_core.archive.apply import ApplyOptions, apply_tar
from cs_core.archive.changes import changes_dirs, export_changes, export_tree, overlay_changes
from cs_core.archive.whiteouts import WhiteoutFormat
from cs_core.model import Change
from cs_core.testing import go_cli_path, require_privileged, requires_command

from .conftest import tree_snapshot


def _base(root: Path) -> None:
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "hosts").write_text("127.0.0.1 localhost\n")
    (root / "etc" / "gone").write_text("x")
    (root / "usr" / "lib").mkdir(parents=True)
    (root / "usr" / "lib" / "libx.so").write_bytes(b"\x7fELF")
    (root / "var" / "cache").mkdir(parents=True)
    (root / "var" / "cache" / "old").write_text("old")
    os.utime(root / "etc" / "hosts", ns=(1_000_000_000, 1_000_000_000))


def _modify(root: Path) -> None:
    (root / "etc" / "hosts").write_text("changed\n")
    (root / "etc" / "gone").unlink()
    (root / "etc" / "new").write_text("new")
    shutil.rmtree(root / "var" / "cache")
    (root / "opt" / "app").mkdir(parents=True)
    (root / "opt" / "app" / "run").write_text("#!/bin/sh\n")
    os.chmod(root / "usr" / "lib" / "libx.so", 0o755)
    os.setxattr(root / "usr", "user.tag", b"1")


def _members(data: bytes) -> list[tuple[str, bytes, int, int]]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        return [(m.name, m.type, m.size, m.mode) for m in tf]


def _names(data: bytes) -> list[str]:
    return [m[0] for m in _members(data)]


def _fmt(changes: list[Change]) -> list[str]:
    return [f"{c.kind_name} {c.path}" for c in changes]


def test_changes_dirs_semantics(tmp_path: Path) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    _base(old)
    shutil.copytree(old, new, symlinks=True)
    _modify(new)
    assert _fmt(changes_dirs(new, old)) == [
        "Modify /etc",
        "Delete /etc/gone",
        "Modify /etc/hosts",
        "Add /etc/new",
        "Add /opt",
        "Add /opt/app",
        "Add /opt/app/run",
        "Modify /usr",
        "Modify /usr/lib",
        "Modify /usr/lib/libx.so",
        "Modify /var",
        "Delete /var/cache",
    ]


def test_changes_without_parent_lists_everything(tmp_path: Path) -> None:
    _base(tmp_path / "t")
    got = _fmt(changes_dirs(tmp_path / "t", None))
    assert got[0] == "Add /etc" and "Add /var/cache/old" in got and len(got) == 9


def test_export_changes_applies_to_the_new_tree(tmp_path: Path) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    _base(old)
    shutil.copytree(old, new, symlinks=True)
    _modify(new)
    buf = io.BytesIO()
    export_changes(new, changes_dirs(new, old), buf)
    names = _names(buf.getvalue())
    assert "etc/.wh.gone" in names and "var/.wh.cache" in names
    target = tmp_path / "target"
    shutil.copytree(old, target, symlinks=True)
    buf.seek(0)
    apply_tar(target, buf, ApplyOptions())
    assert tree_snapshot(target) == tree_snapshot(new)


def test_export_tree_round_trip(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _base(src)
    os.symlink("etc/hosts", src / "link")
    os.link(src / "etc" / "hosts", src / "hard")
    (src / ("long" * 40)).write_text("long name")
    buf = io.BytesIO()
    export_tree(src, buf)
    out = tmp_path / "out"
    out.mkdir()
    buf.seek(0)
    apply_tar(out, buf, ApplyOptions())
    assert tree_snapshot(out) == tree_snapshot(src)
    assert os.stat(out / "hard").st_ino == os.stat(out / "etc" / "hosts").st_ino


def test_overlay_changes_and_native_diff(tmp_path: Path) -> None:
    require_privileged("overlay whiteouts need mknod and trusted xattrs")
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    _base(lower)
    (upper / "etc").mkdir(parents=True)
    (upper / "etc" / "new").write_text("n")
    os.mknod(upper / "etc" / "gone", 0o600 | 0o020000, 0)  # whiteout
    (upper / "var" / "cache").mkdir(parents=True)
    os.setxattr(upper / "var" / "cache", "trusted.overlay.opaque", b"y")
    (upper / "var" / "cache" / "fresh").write_text("f")
    got = _fmt(overlay_changes(upper, [lower], "trusted.overlay.opaque"))
    assert got == [
        "Modify /etc",
        "Delete /etc/gone",
        "Add /etc/new",
        "Modify /var",
        "Delete /var/cache",
        "Add /var/cache/fresh",
    ]
    buf = io.BytesIO()
    export_tree(upper, buf, whiteout_format=WhiteoutFormat.OVERLAY, lowers=[lower])
    names = _names(buf.getvalue())
    assert "etc/.wh.gone" in names and "var/cache/.wh..wh..opq" in names
    # Applying the native diff on the lower gives the merged view.
    merged = tmp_path / "merged"
    shutil.copytree(lower, merged, symlinks=True)
    buf.seek(0)
    apply_tar(merged, buf, ApplyOptions())
    assert sorted(os.listdir(merged / "var" / "cache")) == ["fresh"]
    assert not (merged / "etc" / "gone").exists()


@pytest.mark.interop
def test_changes_and_diff_match_go(tmp_path: Path) -> None:
    require_privileged("the Go CLI's vfs store chowns files")
    requires_command("tar")
    graph, run = tmp_path / "g", tmp_path / "r"
    base = [go_cli_path(), "-g", str(graph), "-R", str(run), "-s", "vfs"]
    src = tmp_path / "src"
    _base(src)
    subprocess.run(["tar", "-C", str(src), "-cf", str(tmp_path / "b.tar"), "."], check=True)
    parent = subprocess.run(
        [*base, "import-layer", "-f", str(tmp_path / "b.tar")], check=True, capture_output=True, text=True
    ).stdout.split()[-1]
    child = subprocess.run(
        [*base, "create-layer", parent], check=True, capture_output=True, text=True
    ).stdout.split()[-1]
    child_dir = graph / "vfs" / "dir" / child
    _modify(child_dir)
    go_out = subprocess.run([*base, "changes", child], check=True, capture_output=True, text=True).stdout
    go_lines = sorted(line.replace('"', "") for line in go_out.splitlines())
    ours = sorted(_fmt(changes_dirs(child_dir, graph / "vfs" / "dir" / parent)))
    assert ours == go_lines
    go_diff = subprocess.run([*base, "diff", "-u", child], check=True, capture_output=True).stdout
    buf = io.BytesIO()
    export_changes(child_dir, changes_dirs(child_dir, graph / "vfs" / "dir" / parent), buf)
    assert _members(buf.getvalue()) == _members(go_diff)


def test_overlay_changes_never_stat_through_a_lower_layers_escaping_symlink(tmp_path: Path) -> None:
    """A lower layer's absolute symlink resolves inside that layer, as the kernel's overlay
    mount of the layer would show it, never on the host: whether the host has the file must
    not turn an Add into a Modify."""
    host = tmp_path / "host"
    (host / "secret").mkdir(parents=True)
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    lower.mkdir()
    os.symlink(str(host), lower / "link")
    (upper / "link" / "secret").mkdir(parents=True)
    got = _fmt(overlay_changes(upper, [lower], "trusted.overlay.opaque"))
    assert got == ["Add /link", "Add /link/secret"]
