"""Interop matrix with the Go CLI on one store: every driver, both directions.

For each driver (btrfs on a loopback btrfs of its own) and each direction, one CLI (the
*writer*) builds a store: layers filled by ``applydiff`` (whiteouts, an opaque directory,
hardlinks, symlinks, xattrs, owners, an ID-mapped layer), images (names, big data with
digests, metadata) and containers (names, big data, a mount with changes). The other CLI (the
*reader*) then runs every read command, and each output must equal the writer's own output
on the same store (and diffs byte for byte); mounts must show the same tree. The reader then
modifies (names, metadata, big data, deletes) and the writer checks again, and finally the
writer deletes everything and the reader must see an empty, consistent store.

The scenario runs once per (driver, direction); every check is its own test, so a failure
names the check. Go 1.43 has no ``check`` command: ours runs it after each phase, whoever
wrote. Containers *we* create as volatile go to ``volatile-containers.json`` as at HEAD, where
1.43 does not look (NOTES.md), so only Go creates one here.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import subprocess
import sys
import tarfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import attrs
import pytest

from cs_core.testing.gocli import go_cli_path
from cs_core.testing.loopfs import driver_home, unmount_under

pytestmark = pytest.mark.interop

DRIVERS = ("vfs", "overlay", "btrfs")
DIRECTIONS = ("go-writes", "ours-writes")
BASE, MID, TOP, MAPPED, EXTRA = (c * 64 for c in "12345")
IMG, IMG2 = "a" * 64, "b" * 64
CTR, CTR2, VOLATILE = "d" * 64, "e" * 64, "f" * 64
MAP = "0:100000:65536"
BIG = hashlib.sha256(b"seed").digest() * 40000  # 1.25 MiB of big data


@attrs.define
class Ran:
    rc: int
    out: bytes
    err: bytes

    def text(self) -> str:
        return f"rc={self.rc}\n--out:\n{self.out.decode('utf-8', 'replace')[:3000]}\n" \
               f"--err:\n{self.err.decode('utf-8', 'replace')[:1000]}"


@attrs.define
class Cli:
    """One CLI (Go's or ours) on the shared store."""

    label: str
    base: list[str]

    def __call__(self, *args: str, stdin: bytes | None = None) -> Ran:
        proc = subprocess.run([*self.base, *args], input=stdin, capture_output=True, timeout=120)
        return Ran(proc.returncode, proc.stdout, proc.stderr)

    def ok(self, *args: str, stdin: bytes | None = None) -> bytes:
        r = self(*args, stdin=stdin)
        assert r.rc == 0, f"{self.label} {' '.join(args)} failed: {r.text()}"
        return r.out


@attrs.define
class World:
    driver: str
    writer: Cli
    reader: Cli
    ours: Cli
    files: Path
    trees: dict[str, object] = attrs.Factory(dict)
    results: dict[str, str | None] = attrs.Factory(dict)


Step = Callable[[World], None]
CHECKS: list[tuple[str, Step]] = []
# Read-only checks: consecutive ones run concurrently, as readers of one store do in real use
# (and the module stays within its share of CI's time).
READ_ONLY: set[str] = set()


def check(name: str, read_only: bool = False) -> Callable[[Step], Step]:
    def register(fn: Step) -> Step:
        CHECKS.append((name, fn))
        if read_only:
            READ_ONLY.add(name)
        return fn
    return register


def same(name: str, *args: str, first: str = "reader", rc: int | None = 0,
         normalise: Callable[[World, bytes], bytes] | None = None) -> None:
    """A check that the reader's output of ``args`` equals the writer's (and exits ``rc``;
    with ``rc=None``, the two exit codes must be equal)."""

    def run(w: World) -> None:
        order = (w.reader, w.writer) if first == "reader" else (w.writer, w.reader)
        a, b = (cli(*args) for cli in order)
        want = a.rc if rc is None else rc
        for cli, r in zip(order, (a, b), strict=True):
            assert r.rc == want, f"{cli.label} {' '.join(args)}: expected rc {rc}, {r.text()}"
        fa, fb = (normalise(w, r.out) if normalise else r.out for r in (a, b))
        if normalise:
            a, b = Ran(a.rc, fa, a.err), Ran(b.rc, fb, b.err)
        assert fa == fb, f"{' '.join(args)} differs:\n{order[0].label}: {a.text()}\n" \
                         f"{order[1].label}: {b.text()}"
    check(name, read_only=True)(run)


def _ours_check(phase: str) -> None:
    @check(f"ours-check-clean-after-{phase}")
    def run(w: World) -> None:
        r = w.ours("check")
        assert r.rc == 0 and r.out.strip() == b"", f"check: {r.text()}"


# ---- inputs --------------------------------------------------------------------------------

def _tar(entries: list[tuple[str, str, bytes | str, dict[str, object]]]) -> bytes:
    """A PAX tar of (name, kind, data-or-target, attributes) entries."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, data, attrs_ in entries:
            info = tarfile.TarInfo(name)
            info.mtime = 1_700_000_000
            info.mode = int(attrs_.get("mode", 0o755 if kind == "dir" else 0o644))  # type: ignore[call-overload]
            info.uid = info.gid = int(attrs_.get("uid", 0))  # type: ignore[call-overload]
            info.pax_headers = {f"SCHILY.xattr.{k}": v for k, v in
                                dict(attrs_.get("xattrs", {})).items()}  # type: ignore[call-overload]
            body = None
            if kind == "dir":
                info.type = tarfile.DIRTYPE
            elif kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, str(data)
            elif kind == "hardlink":
                info.type, info.linkname = tarfile.LNKTYPE, str(data)
            else:
                raw = data.encode() if isinstance(data, str) else data
                info.size, body = len(raw), io.BytesIO(raw)
            tar.addfile(info, body)
    return buf.getvalue()


BASE_TAR = [
    ("etc", "dir", b"", {}),
    ("etc/hostname", "file", "base\n", {}),
    ("etc/passwd", "file", "root:x:0:0::/root:/bin/sh\n", {"mode": 0o600}),
    ("etc/link", "symlink", "hostname", {}),
    ("etc/hard", "hardlink", "etc/hostname", {}),
    ("home", "dir", b"", {}),
    ("home/user", "dir", b"", {"uid": 1000, "mode": 0o700}),
    ("home/user/notes", "file", "mine\n", {"uid": 1000, "xattrs": {"user.note": "hello"}}),
    ("gone", "file", "to be deleted\n", {}),
    ("opaque", "dir", b"", {}),
    ("opaque/old", "file", "hidden later\n", {}),
    ("bin", "dir", b"", {}),
    ("bin/tool", "file", b"\x7fELF" + bytes(range(256)) * 8, {"mode": 0o4755}),
]
MID_TAR = [
    (".wh.gone", "file", b"", {}),
    ("opaque", "dir", b"", {}),
    ("opaque/.wh..wh..opq", "file", b"", {}),
    ("opaque/new", "file", "fresh\n", {}),
    ("etc", "dir", b"", {}),
    ("etc/hostname", "file", "mid\n", {}),
    ("etc/hard2", "hardlink", "etc/hostname", {}),
]
TOP_TAR = [("srv", "dir", b"", {}), ("srv/data", "file", b"x" * 70000, {"xattrs": {"user.k": "v"}})]
MAPPED_TAR = [("owned", "file", "by 0 in the map\n", {}), ("user", "file", "u\n", {"uid": 1000})]


def _make_files(files: Path) -> None:
    files.mkdir(parents=True)
    for name, entries in (("base", BASE_TAR), ("mid", MID_TAR), ("top", TOP_TAR),
                          ("mapped", MAPPED_TAR)):
        (files / f"{name}.tar").write_bytes(_tar(entries))  # type: ignore[arg-type]
    (files / "manifest").write_bytes(b'{"schemaVersion":2,"layers":[]}')
    (files / "big").write_bytes(BIG)
    (files / "state").write_bytes(b"running\n")
    (files / "meta").write_bytes(b"metadata from a file\n")
    (files / "modified").write_bytes(b"modified by the reader\n")
    (files / "layerdata").write_bytes(b"layer big data\n")


def tree(root: Path) -> dict[str, tuple[object, ...]]:
    """What a mounted tree holds: per path type, mode, owners, content, xattrs, link groups."""
    seen: dict[tuple[int, int], str] = {}
    out: dict[str, tuple[object, ...]] = {}
    stack = [root]
    while stack:
        d = stack.pop()
        for entry in sorted(os.scandir(d), key=lambda e: e.name):
            st = entry.stat(follow_symlinks=False)
            rel = os.path.relpath(entry.path, root)
            content: object = None
            if stat.S_ISREG(st.st_mode):
                content = hashlib.sha256(Path(entry.path).read_bytes()).hexdigest()
                if st.st_nlink > 1:
                    content = (content, seen.setdefault((st.st_dev, st.st_ino), rel))
            elif stat.S_ISLNK(st.st_mode):
                content = os.readlink(entry.path)
            elif stat.S_ISDIR(st.st_mode):
                stack.append(Path(entry.path))
            xattrs = sorted((k, os.getxattr(entry.path, k, follow_symlinks=False))
                            for k in os.listxattr(entry.path, follow_symlinks=False)
                            if k.startswith("user."))
            out[rel] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid,
                        content, tuple(xattrs))
    return out


def _mounted_tree(cli: Cli, target: str) -> dict[str, tuple[object, ...]]:
    point = Path(cli.ok("mount", target).decode().strip())
    try:
        return tree(point)
    finally:
        cli.ok("unmount", target)


# ---- phase 1: the writer builds -----------------------------------------------------------

def _write(name: str, *args: str) -> None:
    @check(f"write:{name}")
    def run(w: World) -> None:
        w.writer.ok(*[a.replace("{F}", str(w.files)) for a in args])


_write("create-layer base", "create-layer", "-i", BASE, "-n", "base")
_write("applydiff base", "applydiff", "-f", "{F}/base.tar", "base")
_write("create-layer mid", "create-layer", "-i", MID, "-n", "mid", "-n", "mid2", "base")
_write("applydiff mid (whiteouts, opaque, hardlink)", "applydiff", "-f", "{F}/mid.tar", "mid")
_write("create-layer top", "create-layer", "-i", TOP, "mid")
_write("applydiff top", "applydiff", "-f", "{F}/top.tar", TOP)
_write("create-layer mapped", "create-layer", "-i", MAPPED, "-n", "mapped", "--uidmap", MAP,
       "--gidmap", MAP)
_write("applydiff mapped", "applydiff", "-f", "{F}/mapped.tar", "mapped")
_write("set-layer-data", "set-layer-data", "-f", "{F}/layerdata", "base", "layer-key")
_write("set-metadata layer", "set-metadata", "-m", "layer meta", "mid")
_write("create-image", "create-image", "-i", IMG, "-n", "img:1", "-n", "img:alias", "-m",
       "image meta", TOP)
_write("set-image-data manifest", "set-image-data", "-f", "{F}/manifest", "img:1", "manifest")
_write("set-image-data big", "set-image-data", "-f", "{F}/big", "img:1", "big key/1")
_write("create-image mapped", "create-image", "-i", IMG2, "-n", "img2", "-f", "{F}/meta", MAPPED)
_write("create-container", "create-container", "-i", CTR, "-n", "ctr", "-n", "ctr-alias", "-m",
       "ctr meta", "img:1")
_write("set-container-data", "set-container-data", "-f", "{F}/state", "ctr", "state")
_write("set-container-data big", "set-container-data", "-f", "{F}/big", "ctr", "big")
_write("create-container on mapped image", "create-container", "-i", CTR2, "-n", "ctr2", "img2")


@check("write:container changes through a mount")
def _change_container(w: World) -> None:
    point = Path(w.writer.ok("mount", "ctr").decode().strip())
    try:
        (point / "srv" / "new").write_text("written in the container\n")
        (point / "etc" / "hostname").unlink()
        os.link(point / "srv" / "new", point / "srv" / "new-link")
        os.setxattr(point / "srv" / "new", "user.c", b"ctr")
    finally:
        w.writer.ok("unmount", "ctr")


@check("write:go creates a volatile container (1.43 keeps it in containers.json)")
def _volatile(w: World) -> None:
    if w.writer.label == "go":
        w.writer.ok("create-container", "-i", VOLATILE, "-n", "vol", "--volatile", "img:1")


@check("write:record mounted trees")
def _record_trees(w: World) -> None:
    for target in ("ctr", "ctr2", TOP, MID, MAPPED):
        w.trees[target] = _mounted_tree(w.writer, target)


_ours_check("write")

# ---- phase 2: the reader reads everything ---------------------------------------------------

LAYERS = {"base": BASE, "mid": MID, "top": TOP, "mapped": MAPPED, "ctr-layer": None}


def _read_checks(phase: str, *, after_modify: bool = False) -> None:
    p = f"{phase}:"
    first = "writer" if after_modify else "reader"
    for args in (("layers",), ("layers", "--json"), ("layers", "-t"), ("images",),
                 ("images", "--json"), ("images", "-q"), ("containers",),
                 ("containers", "--json"), ("status",), ("status", "--json")):
        same(p + " ".join(args), *args, first=first, normalise=_status if args[0] == "status" else None)
    for label, ident in LAYERS.items():
        if ident is None or (after_modify and label == "mapped"):
            continue
        same(f"{p}layer --json {label}", "layer", "--json", ident, first=first)
        same(f"{p}layer {label}", "layer", ident, first=first)
        same(f"{p}get-names {label}", "get-names", ident, first=first)
        same(f"{p}list-layer-data {label}", "list-layer-data", ident, first=first)
        same(f"{p}diffsize {label}", "diffsize", ident, first=first)
        if after_modify:
            continue
        same(f"{p}changes {label}", "changes", ident, first=first, normalise=_unordered)
        same(f"{p}changes --json {label}", "changes", "--json", ident, first=first,
             normalise=_unordered)
        same(f"{p}diff bytes {label}", "diff", "-u", ident, first=first)
        # For an unmounted ID-mapped layer both refuse on vfs and btrfs ("layer is not
        # mounted") and answer on overlay (idmapped mounts): the exit codes must agree.
        same(f"{p}layer-parent-owners {label}", "layer-parent-owners", "--json", ident,
             first=first, rc=None if ident == MAPPED else 0)
        same(f"{p}exists -l {label}", "exists", "-l", ident, first=first)
        same(f"{p}mounted {label}", "mounted", ident, first=first)
    same(p + "metadata mid", "metadata", "mid", first=first)
    same(p + "get-layer-data base", "get-layer-data", "base", "layer-key", first=first)
    same(p + "changes top against base", "changes", TOP, BASE, first=first, normalise=_unordered)
    same(p + "diff entries top against base", "diff", "-u", TOP, BASE, first=first,
         normalise=_tar_entries)
    same(p + "diffsize top against base", "diffsize", TOP, BASE, first=first)
    for target in ("img:1", IMG2)[:1 if after_modify else 2]:
        same(f"{p}image --json {target}", "image", "--json", target, first=first)
        same(f"{p}image {target}", "image", target, first=first)
        same(f"{p}get-names {target}", "get-names", target, first=first)
        same(f"{p}metadata {target}", "metadata", target, first=first)
        same(f"{p}metadata -q {target}", "metadata", "-q", target, first=first)
        same(f"{p}list-image-data {target}", "list-image-data", target, first=first)
        same(f"{p}list-image-data --json {target}", "list-image-data", "--json", target,
             first=first)
        same(f"{p}exists -i {target}", "exists", "-i", target, first=first)
    for key in ("manifest", "big key/1"):
        same(f"{p}get-image-data {key}", "get-image-data", "img:1", key, first=first)
        same(f"{p}get-image-data-size {key}", "get-image-data-size", "img:1", key, first=first)
        same(f"{p}get-image-data-digest {key}", "get-image-data-digest", "img:1", key,
             first=first)
    same(p + "images-by-digest", "images-by-digest", _manifest_digest(), first=first)
    same(p + "images-by-digest --json", "images-by-digest", "--json", _manifest_digest(),
         first=first)
    for target in ("ctr", "ctr2")[:1 if after_modify else 2]:
        same(f"{p}container --json {target}", "container", "--json", target, first=first)
        same(f"{p}container {target}", "container", target, first=first)
        same(f"{p}get-names {target}", "get-names", target, first=first)
        same(f"{p}metadata {target}", "metadata", target, first=first)
        same(f"{p}list-container-data {target}", "list-container-data", target, first=first)
        same(f"{p}exists -c {target}", "exists", "-c", target, first=first)
        same(f"{p}container-parent-owners {target}", "container-parent-owners", "--json",
             target, first=first)
        same(f"{p}get-container-dir {target}", "get-container-dir", target, first=first)
        same(f"{p}get-container-run-dir {target}", "get-container-run-dir", target, first=first)
    same(p + "changes of a container name is refused", "changes", "ctr", first=first, rc=1)
    for key in ("state", "big"):
        same(f"{p}get-container-data {key}", "get-container-data", "ctr", key, first=first)
        same(f"{p}get-container-data-size {key}", "get-container-data-size", "ctr", key,
             first=first)
        same(f"{p}get-container-data-digest {key}", "get-container-data-digest", "ctr", key,
             first=first)
    same(p + "exists all", "exists", "base", "img:1", "ctr", first=first, normalise=_unordered)
    same(p + "exists missing", "exists", "nope", rc=1, first=first)
    same(p + "get-names missing", "get-names", "nope", rc=1, first=first)

    @check(p + "container layer diff entries, changes, diffsize, mounted")
    def container_layer(w: World) -> None:
        layer = _container_layer(w)
        for args in (("diff", "-u", layer), ("changes", layer), ("diffsize", layer),
                     ("layer", "--json", layer), ("mounted", layer)):
            a, b = w.reader.ok(*args), w.writer.ok(*args)
            if args[0] == "diff":
                a, b = _tar_entries(w, a), _tar_entries(w, b)
            elif args[0] == "changes":
                a, b = _unordered(w, a), _unordered(w, b)
            assert a == b, f"{args} differs:\nreader: {a[:3000]!r}\nwriter: {b[:3000]!r}"

    for target in ("ctr", "ctr2", TOP, MID, MAPPED):
        if after_modify and target in ("ctr2", MAPPED):
            continue

        @check(f"{p}mount and content {target[:12]}")
        def mount(w: World, target: str = target) -> None:
            got = _mounted_tree(w.reader if not after_modify else w.writer, target)
            assert got == w.trees[target], _tree_diff(w.trees[target], got)  # type: ignore[arg-type]

    @check(p + "volatile container seen by both")
    def volatile(w: World) -> None:
        if w.writer.label != "go":
            return  # ours creates volatile containers in volatile-containers.json (HEAD)
        for cli in (w.reader, w.writer):
            assert cli("exists", "-c", "vol").rc == 0, f"{cli.label} lost the volatile container"

    _ours_check(phase)


def _status(w: World, out: bytes) -> bytes:
    # Newer overlay status lines that 1.43 lacks (the parity test's exemption for "status").
    return b"\n".join(line for line in out.split(b"\n")
                      if b"Supports shifting" not in line and b"Supports volatile" not in line
                      and b'"Supports' not in line)


def _unordered(w: World, out: bytes) -> bytes:
    # Go lists changes (and exists results) in its maps' iteration order, which differs
    # between two Go runs.
    text = out.decode()
    if text.startswith("["):
        return json.dumps(sorted(json.loads(text), key=lambda c: c["Path"])).encode()
    return b"\n".join(sorted(out.split(b"\n")))


def _tar_entries(w: World, out: bytes) -> bytes:
    """A generated diff's entries, sorted: Go writes them in its changes' map order."""
    entries = []
    with tarfile.open(fileobj=io.BytesIO(out), mode="r:") as tar:
        for m in tar:
            f = tar.extractfile(m) if m.isreg() else None
            body = hashlib.sha256(f.read()).hexdigest() if f else ""
            # A whiteout's time is the moment the diff was made (time.Now() in Go).
            mtime = 0 if os.path.basename(m.name).startswith(".wh.") else m.mtime
            entries.append((m.name, m.type.decode(), m.mode, m.uid, m.gid, m.uname, m.gname,
                            mtime, m.size, m.linkname, m.devmajor, m.devminor,
                            sorted(m.pax_headers.items()), body))
    return repr(sorted(entries)).encode()


def _manifest_digest() -> str:
    return "sha256:" + hashlib.sha256(b'{"schemaVersion":2,"layers":[]}').hexdigest()


def _container_layer(w: World) -> str:
    return str(json.loads(w.writer.ok("container", "--json", "ctr"))[0]["layer"])


def _tree_diff(want: dict[str, object], got: dict[str, object]) -> str:
    lines = [f"{k}: want {want.get(k)} got {got.get(k)}" for k in sorted(set(want) | set(got))
             if want.get(k) != got.get(k)]
    return "mounted trees differ:\n" + "\n".join(lines[:40])


_read_checks("read")

# ---- phase 3: the reader modifies, the writer (and reader) check again ----------------------


def _modify(name: str, *args: str, by: str = "reader") -> None:
    @check(f"modify:{name}")
    def run(w: World) -> None:
        cli = w.reader if by == "reader" else w.writer
        cli.ok(*[a.replace("{F}", str(w.files)) for a in args])


_modify("add-names image", "add-names", "-n", "img:new", "img:1")
_modify("set-names container", "set-names", "-n", "ctr-renamed", "-n", "ctr", "ctr")
_modify("add-names layer", "add-names", "-n", "base-extra", "base")
_modify("set-metadata image", "set-metadata", "-m", "new image meta", "img:1")
_modify("set-metadata container", "set-metadata", "-f", "{F}/meta", "ctr")
_modify("set-image-data replace", "set-image-data", "-f", "{F}/modified", "img:1", "big key/1")
_modify("set-container-data new", "set-container-data", "-f", "{F}/modified", "ctr", "added")
_modify("set-layer-data new", "set-layer-data", "-f", "{F}/modified", "mid", "second")
_modify("create-layer on writer's layer", "create-layer", "-i", EXTRA, "-n", "extra", TOP)
_modify("applydiff on writer's layer", "applydiff", "-f", "{F}/top.tar", "extra")
_modify("delete-container ctr2", "delete-container", "ctr2")
_modify("delete-image img2", "delete-image", IMG2)




@check("modify:writer sees the modifications")
def _writer_sees(w: World) -> None:
    names = w.writer.ok("get-names", "img:1").decode()
    assert "img:new" in names and "img:alias" in names, names
    assert w.writer.ok("get-names", "ctr").decode().split() == ["Names:", "ctr-renamed", "ctr"] \
        or "ctr-renamed" in w.writer.ok("get-names", "ctr").decode()
    assert w.writer.ok("metadata", "-q", "img:1").strip() == b"new image meta"
    assert w.writer.ok("get-image-data", "img:1", "big key/1") == b"modified by the reader\n"
    assert w.writer.ok("get-container-data", "ctr", "added") == b"modified by the reader\n"
    assert w.writer.ok("get-layer-data", "mid", "second") == b"modified by the reader\n"
    for kind, target in (("-c", "ctr2"), ("-i", IMG2), ("-l", MAPPED)):
        assert w.writer("exists", kind, target).rc == 1, f"writer still sees {target}"


_read_checks("reread", after_modify=True)
same("reread:diff bytes extra", "diff", "-u", EXTRA, first="writer")
same("reread:changes extra", "changes", EXTRA, first="writer", normalise=_unordered)
same("reread:get-layer-data second", "get-layer-data", "mid", "second", first="writer")

# ---- phase 4: the writer deletes everything, the reader sees an empty store ------------------

@check("final:go deletes its volatile container after our writes")
def _delete_volatile(w: World) -> None:
    if w.writer.label == "go":
        w.writer.ok("delete-container", "vol")


_modify("delete-container ctr", "delete-container", "ctr", by="writer")
_modify("delete-image img", "delete-image", "img:1", by="writer")
for _layer in ("extra", TOP, "mid", "base"):
    _modify(f"delete-layer {_layer[:12]}", "delete-layer", _layer, by="writer")


@check("final:reader sees an empty store")
def _empty(w: World) -> None:
    for args in (("layers",), ("images",), ("containers",)):
        assert w.reader.ok(*args).strip() == b"", f"{w.reader.label} {args}"
    for kind, target in (("-c", "ctr"), ("-i", IMG), ("-l", BASE)):
        assert w.reader("exists", kind, target).rc == 1


@check("final:no stray files in the layer directories")
def _no_strays(w: World) -> None:
    graph = Path(w.writer.base[w.writer.base.index("-g") + 1])
    strays = [str(p.relative_to(graph)) for p in (graph / f"{w.driver}-layers").iterdir()
              if p.name not in ("layers.json", "layers.lock", "volatile-layers.json",
                                ".cs-intents")]  # our crash-recovery journal (NOTES.md)
    assert strays == [], strays


same("final:layers --json", "layers", "--json")
same("final:images --json", "images", "--json")
same("final:containers --json", "containers", "--json")
_ours_check("final")

NAMES = [name for name, _ in CHECKS]
assert len(NAMES) == len(set(NAMES)), "check names must be unique"


# ---- running ------------------------------------------------------------------------------

def _run_one(w: World, name: str, fn: Step) -> None:
    try:
        fn(w)
    except Exception as e:  # every failure is this check's result
        w.results[name] = f"{type(e).__name__}: {e}"
    else:
        w.results[name] = None


def _run_scenario(w: World) -> None:
    batch: list[tuple[str, Step]] = []
    with ThreadPoolExecutor(max_workers=4) as pool:
        for name, fn in [*CHECKS, ("", lambda w: None)]:
            if name in READ_ONLY:
                batch.append((name, fn))
                continue
            list(pool.map(lambda item: _run_one(w, *item), batch))
            batch = []
            if name:
                _run_one(w, name, fn)


@pytest.fixture(scope="module", params=[(d, r) for d in DRIVERS for r in DIRECTIONS],
                ids=lambda p: f"{p[0]}-{p[1]}")
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[World]:
    driver, direction = request.param
    go_path = go_cli_path()
    with driver_home(driver, tmp_path_factory.mktemp(f"matrix-{driver}")) as home:
        store = ["-g", str(home / "graph"), "-R", str(home / "run"), "-s", driver]
        go = Cli("go", [go_path, *store])
        ours = Cli("ours", [sys.executable, "-m", "cs_core", *store])
        writer, reader = (go, ours) if direction == "go-writes" else (ours, go)
        w = World(driver, writer, reader, ours, home / "files")
        _make_files(w.files)
        try:
            _run_scenario(w)
            yield w
        finally:
            go("shutdown", "-f")
            ours("shutdown", "-f")
            unmount_under(home)


@pytest.mark.parametrize("name", NAMES)
def test_interop(world: World, name: str) -> None:
    result = world.results[name]
    assert result is None, result
