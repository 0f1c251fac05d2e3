"""Without CAP_SYS_ADMIN (a confined root): no tree searches, no private mount, no
SNAP_DESTROY. Removal then walks for nested subvolumes and unlinks, changes use the full
comparison, and the results are the same."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from cs_btrfs import ioctl, subvol
from cs_btrfs.driver import BtrfsDriver

from cs_core.drivers.base import CreateOpts, MountOpts
from cs_core.testing import requires_command

from .conftest import DriverFactory, subvolume_paths

_CHILD = textwrap.dedent('''
    import json, sys
    from pathlib import Path
    from cs_btrfs import native, ioctl
    from cs_btrfs.driver import BtrfsDriver
    from cs_core.drivers.base import DriverConfig
    graph = Path(sys.argv[1])
    d = BtrfsDriver(DriverConfig(home=graph / "btrfs", run_home=graph / "run", graph_root=graph,
                                 run_root=graph / "run"))
    with ioctl.open_dir(d.layer_dir("ctr")) as c, ioctl.open_dir(d.layer_dir("base")) as p:
        usable = native.usable(c, p)
    changes = [(c.path, c.kind) for c in d.changes("ctr", "base")]
    d.remove("ctr")
    print(json.dumps({"usable": usable, "changes": changes, "layers": d.list_layers()}))
''')


def test_children_found_by_walk_match_the_tree(driver: BtrfsDriver) -> None:
    driver.create("l", None, CreateOpts())
    root = driver.get("l", MountOpts())
    os.chmod(root, 0o755)
    (root / "a" / "b").mkdir(parents=True)
    ioctl.subvol_create(root / "a", "s1")
    ioctl.subvol_create(root / "a" / "b", "s2")
    ioctl.subvol_create(root / "a" / "s1", "inner")  # grandchild: not a direct child
    with ioctl.open_dir(root) as fd:
        assert sorted(subvol.children_from_tree(fd)) == ["a/b/s2", "a/s1"]
    assert sorted(subvol.children_by_walk(str(root))) == ["a/b/s2", "a/s1"]


def test_remove_and_changes_without_cap_sys_admin(make_driver: DriverFactory, btrfs_mount: Path) -> None:
    requires_command("setpriv")
    d = make_driver()
    before = subvolume_paths(btrfs_mount)
    d.create("base", None, CreateOpts())
    os.chmod(d.layer_dir("base"), 0o755)
    (d.layer_dir("base") / "f").write_text("old")
    d.create_read_write("ctr", "base", CreateOpts())
    root = d.get("ctr", MountOpts())
    (root / "f").write_text("new")
    ioctl.subvol_create(root, "nested")
    (root / "nested" / "x").write_text("x")
    want = [(c.path, c.kind) for c in d.changes("ctr", "base")]
    d.cleanup()

    proc = subprocess.run(
        ["setpriv", "--bounding-set=-sys_admin", "--inh-caps=-sys_admin", sys.executable, "-c", _CHILD,
         str(d.config.graph_root)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert got["usable"] is None  # no tree search without the capability
    assert [tuple(c) for c in got["changes"]] == want
    assert got["layers"] == ["base"]
    assert len(subvolume_paths(btrfs_mount)) == len(before) + 1
