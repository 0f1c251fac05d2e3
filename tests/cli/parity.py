"""Parity script: the same invocations against the Go CLI and ours, on twin stores.

Each step is one command line (split with shlex). ``{F}`` is a directory of shared input
files, ``{OUT}`` a per-CLI output directory. Steps run in order and build on each other.
Outputs are compared after normalising what legitimately differs: store paths, times, and
IDs the stores generate themselves (named in order of appearance).

Run directly (``python tests/cli/parity.py [driver]``) to print every difference.
"""

from __future__ import annotations

import io
import json
import os
import re
import shlex
import subprocess
import sys
import tarfile
from collections.abc import Iterable
from pathlib import Path

import attrs

L1, L2, L3, L4, L5 = (c * 64 for c in "12345")
I1, I2, I3 = (c * 64 for c in "abc")
C1, C2, C3 = (c * 64 for c in "def")
DIGEST = "sha256:" + "0" * 64

STEPS: list[str] = [
    # empty store
    "layers", "images", "containers", "layers --json", "images --json", "containers --json",
    "layers -t",
    # layers
    f"create-layer -i {L1} -n base",
    f"create-layer -i {L2} --name=mid {L1}",
    f"createlayer -i {L3} --name=top -n top2 mid",
    f"create-layer -i {L1}",
    f"create-layer -j -i {L4} --readonly",
    "create-layer -n base",
    "create-layer nosuchparent",
    "layers", "layers -t", "layers --tree", "layers --json", "layers -j",
    "layer base", f"layer {L1} {L2}", "layer base nope", "layer --json base mid",
    "layer nope", f"layer {L1[:12]}",
    # images
    f"create-image -i {I1} -n img1 --metadata=hello top",
    f"create-image -i {I2} -n img2 -n img2b -m md2 base",
    f"createimage -i {I3} -f {{F}}/metadata.txt {L1}",
    f"create-image -i {I1} mid",
    "create-image nosuchlayer",
    "images", "images -q", "images --quiet", "images --json", "images -j -q",
    "image img1", "image img1 img2", "image img1 nope", "image --json img2", "image nope",
    f"image {I3[:10]}",
    f"images-by-digest {DIGEST}", "images-by-digest bogus", "images-by-digest sha256:abc",
    f"images-by-digest --json {DIGEST}", "images-by-digest",
    # containers
    f"create-container -i {C1} -n ctr1 img1",
    f"create-container -i {C2} -n ctr2 -m cmeta img2",
    f"createcontainer -i {C3} --name ctr3 --metadata-file {{F}}/metadata.txt {I3}",
    "create-container -n ctr1 img2",
    "create-container nosuchimage",
    "create-container", "create-container img1 extra",
    "containers", "containers --json", "container ctr1", "container ctr1 ctr2",
    "container ctr1 nope", "container --json ctr3", "container nope",
    "layers", "layers -t",
    # exists
    "exists base img1 ctr1", "exists nope", "exists base nope", "exists -q base",
    "exists -q nope", "exists -l base", "exists -l img1", "exists -i img1", "exists -i ctr1",
    "exists -c ctr1", "exists -c base", "exists --json base", "exists --json nope",
    "exists --layer --quiet base", "exists",
    # names
    "get-names img2", "getnames img2", "get-names --json img2", "get-names ctr3",
    "get-names nope", "get-names base", "set-names -n renamed img2", "get-names img2b",
    "get-names renamed", "setnames --json -n a -n b ctr2", "get-names ctr2",
    "set-names -n b ctr3", "get-names ctr2", "set-names --json ctr3",
    "set-names -n top ctr3",
    # metadata
    "metadata img1", "metadata img1 ctr2", "metadata -q img1", "metadata --json img1 ctr2",
    "metadata nope", "metadata img1 nope", "metadata base", "metadata",
    "set-metadata -m newmeta img1", "metadata img1", "set-metadata img1",
    "setmetadata -f {F}/metadata.txt ctr1", "metadata -q ctr1", "set-metadata -m x nope",
    "set-metadata -m x", "set-metadata -m x a b",
    # big data: images
    "list-image-data img1", "set-image-data -f {F}/data.bin img1 manifest",
    "set-image-data -f {F}/data.bin img1 Other-Key", "listimagedata img1",
    "list-image-data --json img1", "get-image-data img1 manifest",
    "getimagedata img1 Other-Key", "get-image-data img1 nokey",
    "get-image-data img1 no\x01key",  # Go's %q of a control character
    "get-image-data -f {OUT}/img.out img1 manifest", "get-image-data-size img1 manifest",
    "getimagedatasize img1 nokey", "get-image-data-digest img1 manifest",
    "getimagedatadigest img1 Other-Key", "get-image-data-digest img1 nokey",
    "images", "image img1", f"images-by-digest sha256:{'5' * 64}",
    "set-image-data -f {F}/nofile img1 x", "list-image-data nope", "get-image-data img1",
    # big data: containers
    "list-container-data ctr1", "set-container-data -f {F}/data.bin ctr1 config",
    "setcontainerdata -f {F}/metadata.txt ctr1 second", "listcontainerdata ctr1",
    "list-container-data -j ctr1", "get-container-data ctr1 config",
    "getcontainerdata ctr1 nokey", "get-container-data-size ctr1 config",
    "getcontainerdatasize ctr1 second", "get-container-data-digest ctr1 config",
    "getcontainerdatadigest ctr1 nokey", "containers", "container ctr1",
    "get-container-data nope config",
    # big data: layers
    "list-layer-data base", "set-layer-data -f {F}/data.bin base blob",
    "setlayerdata -f {F}/metadata.txt base other", "listlayerdata base",
    "list-layer-data --json base", "get-layer-data base blob", "getlayerdata base nokey",
    "get-layer-data nope blob", "get-layer-data base no\x01key",
    # directories
    "get-container-dir ctr1", "getcontainerdir ctr1", "get-container-run-dir ctr1",
    "getcontainerrundir ctr1", "get-container-dir nope", "get-container-run-dir nope",
    # mounts
    "mounted ctr1", "mount ctr1", "mounted ctr1", "mount --json ctr2", "mounted --json ctr2",
    "mount ctr1", "unmount ctr1", "mounted ctr1", "unmount ctr1", "umount ctr2",
    "unmount --json ctr2", "mount nope", "mount --json nope", "unmount nope",
    "mounted nope", "mount -l label ctr3", "unmount -f ctr3", "mount", "unmount",
    # parent owners, read-only image mounts, copy
    "layer-parent-owners base", "layer-parent-owners --json base", "layer-parent-owners nope",
    "container-parent-owners ctr1", "container-parent-owners -j ctr1",
    "container-parent-owners nope", "mount -r img1", "unmount img1", "mount --ro nope",
    f"copy {{F}}/metadata.txt {L4}:/copied/", f"copy {{F}}/data.bin {L4}:/copied/renamed.bin",
    f"copy --chown 1:2 {{F}}/metadata.txt {L4}:/owned", f"changes {L4}",
    f"copy {L4}:/copied/renamed.bin {L4}:/again", "copy nope:/x base:/y", "copy /x",
    # content
    f"applydiff -f {{F}}/layer.tar {L4}", f"apply-diff -f {{F}}/junk.bin {L4}",
    f"import-layer -i {L5} -n imported -f {{F}}/layer.tar {L1}",
    "importlayer -f {F}/nofile", f"changes {L5}", f"changes --json {L5}", f"diffsize {L5}",
    f"diff-size {L5}", f"diff -u -f {{OUT}}/l5.tar {L5}", f"diff -f {{OUT}}/l5.tar.gz {L5}",
    f"diff --uncompressed -f {{OUT}}/l4.tar {L4}", "get-container-data -f {OUT}/c.out ctr1 config",
    "get-layer-data -f {OUT}/l.out base blob", f"diff -b {L5}", "changes nope",
    "diffsize nope", "diff", "changes a b c", "applydiff",
    # deletions
    "delete-container ctr2", "delete-container nope", "deletecontainer ctr2",
    "delete-container --json nope", "delete-image --test img2b", "images -q",
    "delete-image -t --json img2b", "delete-image nope", "delete-image --json nope",
    "delete-layer top", "delete-layer nope", "deletelayer --json nope",
    f"delete {L4}", "delete nope", "delete --json nope", "layers",
    "delete-image img2b", "delete-image img1", "images", "layers", "containers",
    "delete-image", "delete-layer", "delete",
    # system
    "status", "status --json", "version", "shutdown", "shutdown -f", "shutdown --json",
    "wipe", "wipe --json", "layers", "images", "containers",
    # parsing and usage
    "", "--help", "nosuchcommand", "--bogus layers", "layers --bogus", "layers -z",
    "layers --tree=maybe", "layers --tree=false", "layers -tj", "layers -tz",
    "--debug=false layers", "--debug=nope layers", "create-layer -n", "layers --help",
    "create-layer --help", "mount -h", "images extra", "layers --json=true", "layer",
    "images-by-digest a b", "status extra", "create-image a b", "layers -- -t",
    "get-names", "set-metadata", "layers --json=false", "images -qj", "layers -j=false",
    "-D=false layers", "layers -t=1", "images --quiet=T", "images -q=F", "layers ---tree",
    "layers -", "create-layer -n=", "exists -lq base",
    # a name already in use: last, since 1.43 refuses what we (as HEAD's bats suite) accept
    "create-layer -n dupbase", "create-image -n dup dupbase", "create-image -n dup dupbase",
]


@attrs.define
class Result:
    step: str
    rc: int
    out: str
    err: str


@attrs.define
class Twin:
    """One CLI on one store."""

    command: list[str]
    root: Path
    # Go's messages quote argv[0]: Go runs with this argv[0] (the program is still command[0]).
    argv0: str | None = None

    def __attrs_post_init__(self) -> None:
        (self.root / "out").mkdir(parents=True, exist_ok=True)

    def run(self, step: str, files: Path, driver: str) -> Result:
        text = step.replace("{F}", str(files)).replace("{OUT}", str(self.root / "out"))
        args = [*self.command, "-g", str(self.root / "g"), "-R", str(self.root / "r"),
                "-s", driver, *shlex.split(text)]
        if step == "":
            args = list(self.command)
        if self.argv0 is not None:
            args[0] = self.argv0
        proc = subprocess.run(args, capture_output=True, timeout=120, stdin=subprocess.DEVNULL,
                              executable=self.command[0])
        return Result(step, proc.returncode, proc.stdout.decode("utf-8", "replace"),
                      proc.stderr.decode("utf-8", "replace"))


def make_files(files: Path) -> None:
    files.mkdir(parents=True, exist_ok=True)
    (files / "metadata.txt").write_text("metadata from a file\n")
    (files / "data.bin").write_bytes(b"\x00\x01binary data\xff\n")
    (files / "junk.bin").write_bytes(b"this is not a tar stream at all" * 20)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in (("etc/hello.txt", b"hello\n"), ("etc/quote\"d name", b"q\n")):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 1_700_000_000, 0o644
            tar.addfile(info, io.BytesIO(data))
        d = tarfile.TarInfo("var")
        d.type, d.mtime, d.mode = tarfile.DIRTYPE, 1_700_000_000, 0o755
        tar.addfile(d)
    (files / "layer.tar").write_bytes(buf.getvalue())


_LOG_TIME = re.compile(r'^time="[^"]*"', re.M)  # logrus's stamp on each log line
_TIME = re.compile(r'"(created)":"[^"]*"')
_HEX64 = re.compile(r"\b[0-9a-f]{64}\b")
_KNOWN = {L1, L2, L3, L4, L5, I1, I2, I3, C1, C2, C3}
# Flags and commands only the newer Go CLI (which we follow) has; 1.43's help lacks them.
_HEAD_ONLY_LINES = re.compile(
    r"^  (--image-store|--transient-store|--quick, -q|gc|get-image-dir|get-image-run-dir|"
    r"storage-layers|remove-names|plugins|config|unshare|create-storage-layer|check|dedup|"
    r"applydiff-using-staging-dir|--unshare, -U|"
    # ... and flags no Go CLI has (NOTES.md, "Additions"):
    r"--auto-userns|--auto-userns-size|--auto-userns-initial-size|import-image|export-image|"
    r"--quiet, -q  +Show no progress bar)"
    r"\s.*\n", re.M,
)


# Go prints these from a map, so its line order is random; compare them sorted.
# "changes" lists paths in the driver's readdir order.
_MAP_ORDERED = {"changes", "exists", "delete", "delete-layer", "deletelayer", "delete-image", "deleteimage",
                "delete-container", "deletecontainer"}


def _sorted_json_array(text: str) -> str:
    try:
        doc = json.loads(text)
    except ValueError:
        return text
    if not isinstance(doc, list):
        return text
    return json.dumps(sorted(doc, key=lambda item: json.dumps(item, sort_keys=True))) + "\n"


def normalise(text: str, root: Path, ids: dict[str, str], unordered: bool = False) -> str:
    if unordered:
        text = "".join(sorted(text.splitlines(keepends=True)))
        if text.startswith("["):
            text = _sorted_json_array(text)
    text = text.replace(str(root / "g"), "<G>").replace(str(root / "r"), "<R>")
    text = text.replace(str(root / "out"), "<OUT>")
    text = _TIME.sub(r'"\1":"<TIME>"', text)
    text = _LOG_TIME.sub('time="<TIME>"', text)

    def name_id(m: re.Match[str]) -> str:
        value = m.group(0)
        if value in _KNOWN:
            return value
        return ids.setdefault(value, f"<ID{len(ids) + 1}>")

    text = _HEX64.sub(name_id, text)
    return _HEAD_ONLY_LINES.sub("", text)


@attrs.define
class Difference:
    step: str
    nth: int  # the step's text can recur: this is its nth run (1-based), or 0 for a file
    what: str
    go: str
    ours: str


def compare(go: Twin, ours: Twin, files: Path, driver: str,
            steps: Iterable[str] = STEPS) -> list[Difference]:
    make_files(files)
    go_ids: dict[str, str] = {}
    our_ids: dict[str, str] = {}
    diffs: list[Difference] = []
    seen: dict[str, int] = {}
    for step in steps:
        nth = seen[step] = seen.get(step, 0) + 1
        a, b = go.run(step, files, driver), ours.run(step, files, driver)
        if a.rc != b.rc:
            diffs.append(Difference(step, nth, "exit code", str(a.rc), str(b.rc)))
        unordered = step.split(" ", 1)[0] in _MAP_ORDERED
        for what in ("out", "err"):
            x = normalise(getattr(a, what), go.root, go_ids, unordered)
            y = normalise(getattr(b, what), ours.root, our_ids, unordered)
            if x != y:
                diffs.append(Difference(step, nth, what, x, y))
    # Files the commands wrote (get-*-data -f, diff -f) must be byte-identical.
    for produced in sorted((go.root / "out").iterdir()):
        theirs = produced.read_bytes()
        mine_path = ours.root / "out" / produced.name
        mine = mine_path.read_bytes() if mine_path.exists() else b"<missing>"
        if theirs != mine:
            diffs.append(Difference(f"<file {produced.name}>", 0, "content",
                                    f"{len(theirs)} bytes", f"{len(mine)} bytes"))
    return diffs


def our_command() -> list[str]:
    return [sys.executable, "-m", "cs_core"]


def twins(root: Path) -> tuple[Twin, Twin]:
    """Go and ours, on stores under ``root``."""
    from cs_core.testing.gocli import go_cli_path

    return (Twin([go_cli_path()], root / "go", argv0="containers-storage"),
            Twin(our_command(), root / "py"))


if __name__ == "__main__":
    import tempfile

    drv = sys.argv[1] if len(sys.argv) > 1 else "vfs"
    with tempfile.TemporaryDirectory(dir=os.environ.get("PARITY_TMP")) as tmp:
        go_twin, our_twin = twins(Path(tmp))
        try:
            found = compare(go_twin, our_twin, Path(tmp) / "files", drv)
        finally:
            for twin in (go_twin, our_twin):
                twin.run("shutdown -f", Path(tmp) / "files", drv)
        for d in found:
            print(f"=== {d.step!r} (run {d.nth}): {d.what}\n--- go\n{d.go}\n--- ours\n{d.ours}")
        print(f"{len(STEPS)} steps, {len(found)} differences")
