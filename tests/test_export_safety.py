"""`diff` and `check` on real stores never read outside a layer nor emit bytes they cannot vouch for.

A layer's tar-split replay (``diff`` of an imported layer, ``check``'s content verification) and
the export of a live layer must resolve every name beneath the layer root, follow no symlink,
and write no byte of a file whose size or CRC-64 disagrees with the record.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from cs_core.errors import UnsafeArchive
from cs_core.store import Store
from cs_core.store.check import CheckOptions
from cs_core.testing.tars import MTIME, layer_tar

ORIGINAL = b"original layer content\n" * 40
SECRET = b"HOST-SECRET-" + b"s" * (len(ORIGINAL) - 12)  # same size as the layer's file


def _dir_then_symlink(target: Path) -> bytes:
    """``d/f`` first (``d`` made implicitly), then ``d`` a symlink to a host directory."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        f = tarfile.TarInfo("d/f")
        f.size, f.mode, f.mtime = len(ORIGINAL), 0o644, MTIME
        tar.addfile(f, io.BytesIO(ORIGINAL))
        link = tarfile.TarInfo("d")
        link.type, link.linkname, link.mtime = tarfile.SYMTYPE, str(target), MTIME
        tar.addfile(link)
    return buf.getvalue()


def _host_dir(tmp_path: Path, data: bytes) -> Path:
    host = tmp_path / "host"
    host.mkdir()
    (host / "f").write_bytes(data)
    return host


def _diff(store: Store, layer: str) -> tuple[bytes, BaseException | None]:
    out = io.BytesIO()
    try:
        store.diff(None, layer, out)
    except Exception as exc:  # what matters is what reached the output
        return out.getvalue(), exc
    return out.getvalue(), None


def test_replay_does_not_follow_a_symlinked_parent_onto_the_host(
        make_store: Callable[[], Store], tmp_path: Path) -> None:
    host = _host_dir(tmp_path, SECRET)
    store = make_store()
    layer = store.put_layer(diff=io.BytesIO(_dir_then_symlink(host)))
    out, err = _diff(store, layer.id)
    assert b"HOST-SECRET" not in out
    assert isinstance(err, UnsafeArchive)


def test_check_does_not_verify_a_layer_against_host_files(
        make_store: Callable[[], Store], tmp_path: Path) -> None:
    # The host file has the very bytes tar-split records: read through the symlink, the layer
    # would look intact. Its own d/f is gone, so the layer is damaged.
    host = _host_dir(tmp_path, ORIGINAL)
    store = make_store()
    layer = store.put_layer(diff=io.BytesIO(_dir_then_symlink(host)))
    report = store.check(CheckOptions.everything())
    assert layer.id in report.layers, report.lines()


def _rewrite_tar_split(store: Store, layer: str, name: str) -> None:
    path = store.layer_store.tar_split_path(layer)
    with gzip.open(path, "rb") as fh:
        lines = fh.read().splitlines()
    out = []
    for line in lines:
        obj = json.loads(line)
        if obj.get("type") == 1 and obj.get("name") == "f":
            obj["name"] = name
            line = json.dumps(obj, separators=(",", ":")).encode()
        out.append(line)
    with gzip.open(path, "wb") as fh:
        fh.write(b"\n".join(out) + b"\n")


def test_replay_rejects_names_leaving_the_layer(make_store: Callable[[], Store], tmp_path: Path) -> None:
    host = _host_dir(tmp_path, SECRET)
    store = make_store()
    layer = store.put_layer(diff=io.BytesIO(layer_tar([("f", SECRET)])))
    _rewrite_tar_split(store, layer.id, "../" * 40 + str(host / "f").lstrip("/"))
    # The layer's own f carries the same bytes: make it differ, so only an escape would match.
    os.chmod(_layer_file(store, layer.id, "f"), 0o644)
    _layer_file(store, layer.id, "f").write_bytes(b"x" * len(SECRET))
    out, err = _diff(store, layer.id)
    assert b"HOST-SECRET" not in out
    assert isinstance(err, UnsafeArchive)


def _layer_file(store: Store, layer: str, rel: str) -> Path:
    home = Path(store.driver.home)
    if store.driver.name == "vfs":
        return home / "dir" / layer / rel
    return home / layer / "diff" / rel


@pytest.mark.parametrize("size", [5000, (8 << 20) + 12345])
def test_file_failing_its_checksum_is_never_emitted(
        make_store: Callable[[], Store], size: int) -> None:
    data = os.urandom(size)
    store = make_store()
    layer = store.put_layer(diff=io.BytesIO(layer_tar([("a", b"first"), ("f", data)])))
    tampered = b"TAMPERED" + data[8:]
    _layer_file(store, layer.id, "f").write_bytes(tampered)
    out, err = _diff(store, layer.id)
    assert isinstance(err, UnsafeArchive) and "integrity" in str(err)
    assert b"first" in out  # the stream stops at the bad file, not before
    assert b"TAMPERED" not in out


def test_file_of_the_wrong_size_is_never_emitted(make_store: Callable[[], Store]) -> None:
    store = make_store()
    layer = store.put_layer(diff=io.BytesIO(layer_tar([("f", ORIGINAL)])))
    _layer_file(store, layer.id, "f").write_bytes(ORIGINAL + b"GROWN" * 1000)
    out, err = _diff(store, layer.id)
    assert isinstance(err, UnsafeArchive)
    assert b"original layer content" not in out


_SWAPPER = r"""
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
pairs = [(a.encode(), b.encode()) for a, b in zip(sys.argv[1::2], sys.argv[2::2])]
print("ready", flush=True)
for _ in range(2_000_000):  # bounded: the test kills it long before
    for a, b in pairs:
        libc.renameat2(-100, a, -100, b, 2)  # RENAME_EXCHANGE
"""


@pytest.mark.parametrize("on_parent", [False, True], ids=["whole-tree", "changes"])
def test_live_layer_export_never_reads_through_a_swapped_symlink(
        make_store: Callable[[], Store], tmp_path: Path, on_parent: bool) -> None:
    import subprocess
    import sys

    host = _host_dir(tmp_path, SECRET)
    os.setxattr(host / "f", "user.secret", b"HOST-SECRET in an xattr")  # read by path, it leaked
    store = make_store()
    parent = store.put_layer(diff=io.BytesIO(layer_tar([("base", b"b")]))).id if on_parent else None
    layer = store.create_layer(parent=parent, writeable=True)
    root = _layer_file(store, layer.id, "")
    (root / "a").write_bytes(ORIGINAL)  # swapped with b, a symlink to the host file
    os.symlink(host / "f", root / "b")
    (root / "d").mkdir()  # swapped with e, a symlink to the host directory
    (root / "d" / "f").write_bytes(ORIGINAL)
    os.symlink(host, root / "e")
    swapper = subprocess.Popen(
        [sys.executable, "-c", _SWAPPER, str(root / "a"), str(root / "b"), str(root / "d"), str(root / "e")],
        stdout=subprocess.PIPE)
    try:
        assert swapper.stdout is not None and swapper.stdout.readline() == b"ready\n"
        exported = 0
        for _ in range(200):
            out, err = _diff(store, layer.id)
            assert b"HOST-SECRET" not in out
            if err is None:
                exported += 1
            else:
                assert isinstance(err, UnsafeArchive) and "kept changing" in str(err), err
    finally:
        swapper.kill()
        swapper.wait()
    assert exported > 0


def _without_whiteout_times(tar: bytes) -> bytes:
    """``tar`` with the mtime and checksum of ``.wh.`` headers zeroed: Go stamps them with now."""
    out = bytearray(tar)
    pos = 0
    while pos + 512 <= len(out):
        block = out[pos:pos + 512]
        if not any(block):
            break
        name = bytes(block[:100]).rstrip(b"\0")
        size = int(bytes(block[124:136]).rstrip(b"\0 ") or b"0", 8)
        if b".wh." in name.rpartition(b"/")[2]:
            out[pos + 136:pos + 156] = bytes(20)
        pos += 512 + -(-size // 512) * 512
    return bytes(out)


def test_diff_with_whiteouts_is_byte_identical_to_gos(
        make_store: Callable[[], Store], store_roots: tuple[Path, Path], driver_name: str) -> None:
    import subprocess

    from cs_core.testing.gocli import go_cli_path

    go_cli = go_cli_path()

    store = make_store()
    base = store.put_layer(diff=io.BytesIO(layer_tar(
        [("etc/", None), ("etc/a", b"a"), ("etc/b", b"b"), ("x", b"x")])))
    child = store.create_layer(parent=base.id, writeable=True)
    root = Path(store.mount(child.id))
    try:
        (root / "etc" / "a").unlink()
        (root / "x").unlink()
        (root / "etc" / "new").write_bytes(b"new")
    finally:
        store.unmount(child.id, force=True)
    ours = io.BytesIO()
    store.diff(None, child.id, ours)
    graph, run = store_roots
    go = subprocess.run([go_cli, "-g", str(graph), "-R", str(run), "-s", driver_name,
                         "diff", "-u", child.id], check=True, capture_output=True).stdout
    assert b".wh.a" in ours.getvalue() and b".wh.x" in ours.getvalue()
    assert _without_whiteout_times(ours.getvalue()) == _without_whiteout_times(go)


def test_live_changes_never_read_a_host_files_attributes(tmp_path: Path) -> None:
    """``changes`` of a live layer whose directory is swapped with a symlink to a host directory:
    a host file identical but for an xattr must never show up as a modification."""
    import subprocess
    import sys

    from cs_core.archive.changes import changes_dirs
    from cs_core.model import Change

    old, new, host = tmp_path / "old", tmp_path / "new", tmp_path / "host"
    for top in (old / "d", new / "d", host):
        top.mkdir(parents=True)
        (top / "f").write_bytes(ORIGINAL)
        os.utime(top / "f", ns=(MTIME * 10**9, MTIME * 10**9))
    os.setxattr(host / "f", "user.secret", b"HOST-SECRET")
    os.symlink(host, new / "e")
    swapper = subprocess.Popen([sys.executable, "-c", _SWAPPER, str(new / "d"), str(new / "e")],
                               stdout=subprocess.PIPE)
    try:
        assert swapper.stdout is not None and swapper.stdout.readline() == b"ready\n"
        for _ in range(2000):  # path-based reads leaked about 1 run in 150
            assert Change("/d/f", Change.MODIFY) not in changes_dirs(new, old)
    finally:
        swapper.kill()
        swapper.wait()
