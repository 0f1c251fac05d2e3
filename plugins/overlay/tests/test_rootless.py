"""Native overlay inside a user namespace (rootless podman's case): userxattr, user.overlay.*."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from cs_core.testing import require_privileged, requires_command

SCRIPT = r'''
import io, json, os, sys, tarfile
from pathlib import Path
from cs_core.drivers.base import ApplyDiffOpts, CreateOpts, DriverConfig, MountOpts
from cs_overlay import fsinfo, mounting
from cs_overlay.driver import OverlayDriver

root = Path(sys.argv[1])
out = {"rootless": fsinfo.rootless()}
d = OverlayDriver(DriverConfig(home=root / "g" / "overlay", run_home=root / "r" / "overlay",
                               graph_root=root / "g", run_root=root / "r"))

def tar(entries):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tf.addfile(info)
            else:
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf

a, b, c = "a" * 64, "b" * 64, "c" * 64
d.create(a, None, CreateOpts())
d.apply_diff(a, None, tar([("keep", b"k"), ("gone", b"g"), ("dir", None), ("dir/old", b"o")]),
             ApplyDiffOpts())
d.create(b, a, CreateOpts())
d.apply_diff(b, a, tar([(".wh.gone", b""), ("dir", None), ("dir/.wh..wh..opq", b""),
                        ("dir/new", b"n")]), ApplyDiffOpts())
out["xattrs"] = os.listxattr(d.home / b / "diff" / "dir")
m = d.get(b, MountOpts(options=("ro",)))
out["ro_tree"] = [sorted(os.listdir(m)), os.listdir(m / "dir")]
out["mount_line"] = next(l for l in open("/proc/self/mountinfo") if f" {m} " in l)
d.put(b)
d.create_read_write(c, b, CreateOpts())
m = d.get(c, MountOpts())
os.unlink(m / "keep")
(m / "x").write_text("x")
d.put(c)
out["native"] = dict(d.status())["Native Overlay Diff"]
out["diff_c"] = tarfile.open(fileobj=io.BytesIO(d.diff(c, b).read())).getnames()
out["diff_b"] = tarfile.open(fileobj=io.BytesIO(d.diff(b, a).read())).getnames()
out["changes_b"] = [[ch.kind_name, ch.path] for ch in d.changes(b, a)]
d.cleanup()
print(json.dumps(out))
'''


def test_native_overlay_in_a_user_namespace(tmp_path: Path) -> None:
    require_privileged()
    requires_command("unshare")
    # a private mount namespace too: every mount dies with the child, nothing can leak
    proc = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", sys.executable, "-c",
                           SCRIPT, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.splitlines()[-1])
    assert out["rootless"] is True
    assert out["xattrs"] == ["user.overlay.opaque"]
    assert out["ro_tree"] == [["dir", "keep"], ["new"]]
    assert "userxattr" in out["mount_line"]
    assert out["native"] == "true"
    assert out["diff_c"] == [".wh.keep", "x"]
    assert out["diff_b"] == ["dir", "dir/.wh..wh..opq", "dir/new", ".wh.gone"]
    assert out["changes_b"] == [["Delete", "/dir"], ["Add", "/dir/new"], ["Delete", "/gone"]]
