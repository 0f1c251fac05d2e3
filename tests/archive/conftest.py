"""Helpers for the tar-engine tests: crafting tars, applying them, and watching what lies outside."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cs_core.archive.apply import ApplyOptions, apply_tar
from cs_core.archive.tarsplit import TarSplitWriter
from cs_core.model import ApplyResult


def member(
    name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", **kw: Any
) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = len(data) if kind in (tarfile.REGTYPE, tarfile.AREGTYPE) else 0
    info.mode = kw.pop("mode", 0o755 if kind == tarfile.DIRTYPE else 0o644)
    info.mtime = kw.pop("mtime", 1_600_000_000)
    for key, value in kw.items():
        setattr(info, key, value)
    return info, data


def make_tar(*members: tuple[tarfile.TarInfo, bytes], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buf.getvalue()


def apply_bytes(
    root: Path, data: bytes, options: ApplyOptions | None = None, split: bool = False
) -> tuple[ApplyResult, bytes]:
    ts = io.BytesIO()
    result = apply_tar(
        root, io.BytesIO(data), options or ApplyOptions(), TarSplitWriter(ts) if split else None
    )
    return result, ts.getvalue()


def tree_snapshot(path: Path) -> dict[str, tuple[int, int, int, str]]:
    """Every entry under ``path`` with its mode, owner, size and content digest (links not followed)."""
    out: dict[str, tuple[int, int, int, str]] = {}
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            digest = ""
            if os.path.islink(p):
                digest = os.readlink(p)
            elif os.path.isfile(p):
                digest = hashlib.sha256(Path(p).read_bytes()).hexdigest()
            out[os.path.relpath(p, path)] = (st.st_mode, st.st_uid, st.st_size, digest)
    return out


@pytest.fixture
def arena(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """(root, outside): a layer root and a sibling directory that must never change."""
    root = tmp_path / "layer"
    outside = tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret").write_text("keep me")
    (outside / "dir").mkdir()
    (outside / "dir" / "file").write_text("keep me too")
    before = tree_snapshot(tmp_path.parent / tmp_path.name / "outside")
    yield root, outside
    assert tree_snapshot(outside) == before, "something outside the layer root changed"
