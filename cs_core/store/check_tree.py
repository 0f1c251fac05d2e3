"""What a layer's diff says its tree holds, and what the mounted tree holds, for ``check``'s
content comparison (Go ``checkDirectory``); and the reassembly of a diff for its digest."""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import tarfile
import threading
from pathlib import Path

import attrs

from cs_core import walk
from cs_core.model import IDMap, Layer
from cs_core.records.layers import LayerStore
from cs_core.store.content import write_layer_tar
from cs_core.store.context import StoreContext

# -- tar headers of a layer's diff --------------------------------------------------------------


@attrs.define
class _Entry:
    kind: str  # "reg", "dir", "sym", "chr", "blk", "fifo", "sock"
    uid: int
    gid: int
    mode: int  # permission bits only
    size: int
    mtime: int
    implied: bool = False  # created only because a child needed it: attributes unknown


def _clean(name: str) -> str:
    parts = [p for p in name.split("/") if p and p != "."]
    return "/" + "/".join(parts)


def _tar_kind(member: tarfile.TarInfo) -> str:
    if member.isdir():
        return "dir"
    if member.issym():
        return "sym"
    if member.ischr():
        return "chr"
    if member.isblk():
        return "blk"
    if member.isfifo():
        return "fifo"
    return "reg"


class Tree:
    """The file tree a sequence of layer diffs produces (Go ``checkDirectory``)."""

    def __init__(self) -> None:
        self.entries: dict[str, _Entry] = {"/": _Entry("dir", 0, 0, 0o755, 0, 0, implied=True)}

    def _remove_subtree(self, path: str, keep_self: bool = False) -> None:
        prefix = path.rstrip("/") + "/"
        for key in [k for k in self.entries if k.startswith(prefix)]:
            del self.entries[key]
        if not keep_self:
            self.entries.pop(path, None)

    def _ensure_parents(self, path: str) -> None:
        parent = os.path.dirname(path)
        while parent != "/" and parent not in self.entries:
            self.entries[parent] = _Entry("dir", 0, 0, 0o755, 0, 0, implied=True)
            parent = os.path.dirname(parent)

    def apply(self, headers: list[tarfile.TarInfo]) -> None:
        for member in headers:
            path = _clean(member.name)
            if path == "/":
                continue
            base = os.path.basename(path)
            directory = os.path.dirname(path)
            if base == ".wh..wh..opq":
                self._remove_subtree(directory, keep_self=True)
                continue
            if base.startswith(".wh."):
                self._remove_subtree(os.path.join(directory, base[4:]))
                continue
            self._ensure_parents(path)
            if member.islnk():
                target = self.entries.get(_clean(member.linkname))
                if target is not None:
                    self.entries[path] = attrs.evolve(target)
                continue
            existing = self.entries.get(path)
            if existing is not None and not (existing.kind == "dir" and member.isdir()):
                self._remove_subtree(path)
            self.entries[path] = _Entry(
                _tar_kind(member), member.uid, member.gid, member.mode & 0o777,
                member.size if member.isreg() else 0, int(member.mtime),
            )


def scan(root: Path, uid_map: list[IDMap], gid_map: list[IDMap]) -> dict[str, _Entry]:
    """The mounted tree, with owners mapped back into the layer's ID namespace."""
    found: dict[str, _Entry] = {}
    for d in walk.walk(root):  # iterative, fd-relative: no depth or path-length limit
        prefix = "/" + d.rel + "/" if d.rel else "/"
        for entry in d.entries:
            st = entry.stat(follow_symlinks=False)
            mode = st.st_mode
            kind = ("dir" if stat.S_ISDIR(mode) else "sym" if stat.S_ISLNK(mode)
                    else "chr" if stat.S_ISCHR(mode) else "blk" if stat.S_ISBLK(mode)
                    else "fifo" if stat.S_ISFIFO(mode) else "sock" if stat.S_ISSOCK(mode)
                    else "reg")
            rel = prefix + entry.name
            found[rel] = _Entry(kind, _to_container(st.st_uid, uid_map),
                                _to_container(st.st_gid, gid_map), mode & 0o777,
                                st.st_size if kind == "reg" else 0, int(st.st_mtime))
    return found


def _to_container(host_id: int, mapping: list[IDMap]) -> int:
    if not mapping:
        return host_id
    for m in mapping:
        if m.host_id <= host_id < m.host_id + m.size:
            return m.container_id + host_id - m.host_id
    return host_id


def compare(expected: dict[str, _Entry], actual: dict[str, _Entry], *, owners: bool,
             perms: bool, times: bool) -> list[str]:
    diffs: list[str] = []
    for path in sorted(set(expected) | set(actual)):
        if path == "/":
            continue
        want, have = expected.get(path), actual.get(path)
        if have is None:
            assert want is not None
            diffs.append(f"-{path}{'/' if want.kind == 'dir' else ''}")
            continue
        if want is None:
            diffs.append(f"+{path}{'/' if have.kind == 'dir' else ''}")
            continue
        if want.implied:
            continue
        parts: list[str] = []
        if perms and want.kind != have.kind:
            parts.append(f"filetype:{want.kind}￫{have.kind}")
        if owners and want.uid != have.uid:
            parts.append(f"uid:{want.uid}￫{have.uid}")
        if owners and want.gid != have.gid:
            parts.append(f"gid:{want.gid}￫{have.gid}")
        if want.kind == "reg" and have.kind == "reg" and want.size != have.size:
            parts.append(f"size:{want.size}￫{have.size}")
        if perms and want.kind != "sym" and want.mode != have.mode:
            parts.append(f"mode:{want.mode:04o}￫{have.mode:04o}")
        # Directory times change whenever a later layer adds to them; only files are compared.
        if times and want.kind not in ("dir", "sym") and want.mtime != have.mtime:
            parts.append(f"mtime:0x{want.mtime:x}￫0x{have.mtime:x}")
        if parts:
            diffs.append(f"{path}({','.join(parts)})")
    return diffs


class _DigestingPipe:
    """Writer side of a pipe that digests and counts what passes through it."""

    def __init__(self, fd: int, algorithm: str) -> None:
        self._file = os.fdopen(fd, "wb")
        self.hash = hashlib.new(algorithm)
        self.count = 0

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        self.count += len(data)
        self._file.write(data)
        return len(data)

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        with contextlib.suppress(BrokenPipeError):
            self._file.close()


def read_diff(ctx: StoreContext, ls: LayerStore, layer: Layer,
               algorithm: str) -> tuple[str, int, list[tarfile.TarInfo]]:
    """Reassemble a layer's diff from tar-split; return (digest, size, headers).

    The reassembly (which needs the driver, under our locks) writes into a pipe that a
    helper thread parses as a tar stream, so memory stays flat for any layer size.
    """
    ts_path = ls.tar_split_path(layer.id)
    headers: list[tarfile.TarInfo] = []
    failure: list[BaseException] = []
    rfd, wfd = os.pipe()

    def parse() -> None:
        with os.fdopen(rfd, "rb") as source:
            try:
                with tarfile.open(fileobj=source, mode="r|") as tar:
                    for member in tar:
                        headers.append(member)
            except (tarfile.TarError, OSError, EOFError) as exc:
                failure.append(exc)
            while source.read(1 << 16):  # drain the trailer (or the rest after an error)
                pass

    reader = threading.Thread(target=parse, daemon=True)
    reader.start()
    sink = _DigestingPipe(wfd, algorithm)
    try:
        # No tar-split (e.g. layers written by a tool that keeps none): the driver's diff.
        parent = ls.lookup(layer.parent) if layer.parent else None
        write_layer_tar(ctx.driver, layer, ts_path if ts_path.exists() else None,
                        layer.parent or None, parent.id_maps if parent is not None else None,
                        sink)  # type: ignore[arg-type]
    finally:
        sink.close()
        reader.join()
    if failure:
        raise failure[0]
    return f"{algorithm}:{sink.hash.hexdigest()}", sink.count, headers
