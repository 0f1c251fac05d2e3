"""Conformance checks for what drivers most often get wrong: metadata, counts, selection.

Mixed into :class:`cs_core.testing.conformance.GraphDriverConformance` (which provides the
``driver``, ``driver_config`` and ``store`` fixtures); run it through that class.

- copies of a layer (children, ``create_from_template``) keep modes, owners, xattrs and
  hard links;
- diffs a driver produces carry metadata-only and xattr-only changes and directories that
  were removed and made again (opaque in overlay), so replaying them rebuilds the layer;
- nested mounts are counted, and a mounted layer can be removed;
- ``update_layer_id_map`` re-owns every file;
- automatic selection still finds the driver with a broken plugin installed.
"""

from __future__ import annotations

import io
import os
import stat
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from cs_core import recordclass
from cs_core.drivers.base import ApplyDiffOpts, CreateOpts, DriverConfig, GraphDriver, MountOpts
from cs_core.drivers.entrypoints import entry_points
from cs_core.drivers.plugins import ENTRY_POINT_GROUP, PluginRegistry
from cs_core.model import Change, IDMap
from cs_core.testing.tars import layer_tar

if TYPE_CHECKING:
    from cs_core.store import Store

XATTR = "user.cs-conformance"
Meta = dict[str, tuple[Any, ...]]


def meta_tree(root: Path) -> Meta:
    """Per path: mode, owner, ``user.*`` xattrs, content or link target, and the smallest
    path sharing its inode (hard links), so two trees compare in every way a copy can lose."""
    entries: list[tuple[str, os.stat_result, Path]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            entries.append((str(path.relative_to(root)), os.lstat(path), path))
    first: dict[int, str] = {}
    for rel, st, _ in sorted(entries):
        first.setdefault(st.st_ino, rel)
    out: Meta = {}
    for rel, st, path in entries:
        link = os.path.islink(path)
        xattrs = {} if link else {k: os.getxattr(path, k) for k in os.listxattr(path)
                                  if k.startswith("user.")}
        data: bytes | str | None = os.readlink(path) if link else \
            path.read_bytes() if stat.S_ISREG(st.st_mode) else None
        shared = first[st.st_ino] if stat.S_ISREG(st.st_mode) and st.st_nlink > 1 else None
        out[rel] = (stat.filemode(st.st_mode), st.st_uid, st.st_gid, xattrs, data, shared)
    return out


def _apply(drv: GraphDriver, id: str, parent: str | None, tar: bytes) -> None:
    drv.apply_diff(id, parent, io.BytesIO(tar), ApplyDiffOpts())


def _read(drv: GraphDriver, id: str) -> Meta:
    root = drv.get(id, MountOpts(options=("ro",)))
    try:
        return meta_tree(root)
    finally:
        drv.put(id)


def _edit(drv: GraphDriver, id: str, change: Callable[[Path], None]) -> None:
    root = drv.get(id, MountOpts())
    try:
        change(root)
    finally:
        drv.put(id)


def _rich_base(drv: GraphDriver) -> None:
    """Layer ``base``: a setuid file with another owner, a hard link, a symlink, xattrs."""
    drv.create("base", None, CreateOpts())
    _apply(drv, "base", None, layer_tar([
        ("d", None, 0o750), ("d/f", b"data", 0o4755), ("d/g", b"other", 0o640),
        ("d/m", b"mode", 0o2755),
        ("old", None, 0o755), ("old/a", b"a", 0o644),
    ]))

    def enrich(root: Path) -> None:
        os.link(root / "d" / "f", root / "d" / "hard")
        os.symlink("f", root / "d" / "sym")
        os.setxattr(root / "d", XATTR, b"dir")
        os.setxattr(root / "d" / "g", XATTR, b"file")
        if os.geteuid() == 0:
            os.chown(root / "d" / "g", 1000, 100)
            os.chmod(root / "d" / "f", 0o4755)  # chown clears setuid on some filesystems

    _edit(drv, "base", enrich)


class MetadataChecks:
    """The checks; ``driver_name`` and the fixtures come from GraphDriverConformance."""

    driver_name: ClassVar[str]

    def test_copies_keep_modes_owners_xattrs_and_hard_links(self, driver: GraphDriver) -> None:
        _rich_base(driver)
        wanted = _read(driver, "base")
        assert wanted["d/hard"][5] == "d/f" and wanted["d/f"][0] == "-rwsr-xr-x"
        driver.create("child", "base", CreateOpts())
        driver.create_read_write("rw-child", "base", CreateOpts())
        driver.create("next", "base", CreateOpts())
        _apply(driver, "next", "base", layer_tar([("added", b"n", 0o644)]))
        driver.create_from_template("copy", "next", ((), ()), "base", ((), ()), CreateOpts(), False)
        assert _read(driver, "child") == wanted
        assert _read(driver, "rw-child") == wanted
        copied = _read(driver, "copy")
        assert copied.pop("added")[4] == b"n"
        assert copied == wanted

    def test_produced_diffs_carry_metadata_xattrs_and_opaque_dirs(self, driver: GraphDriver) -> None:
        _rich_base(driver)
        driver.create_read_write("top", "base", CreateOpts())

        def change(root: Path) -> None:
            # Mode only. (Not of a hard-linked file: fuse-overlayfs copies up one name of it
            # and then shows either inode under both names.)
            os.chmod(root / "d" / "m", 0o700)
            os.setxattr(root / "d" / "g", XATTR, b"changed")  # xattr only
            (root / "old" / "a").unlink()
            (root / "old").rmdir()  # removed and made again: opaque in overlay
            (root / "old").mkdir(0o711)
            (root / "old" / "b").write_bytes(b"b")

        _edit(driver, "top", change)
        kinds = {(c.path, c.kind) for c in driver.changes("top", "base")}
        assert {("/d/m", Change.MODIFY), ("/d/g", Change.MODIFY), ("/old/b", Change.ADD)} <= kinds
        # The old entry's deletion, or (overlay, as Go's) the opaque directory's replacement.
        assert kinds & {("/old/a", Change.DELETE), ("/old", Change.DELETE)}
        stream = driver.diff("top", "base")
        try:
            diff = stream.read()
        finally:
            stream.close()
        driver.create("replay", "base", CreateOpts())
        _apply(driver, "replay", "base", diff)
        replayed, wanted = _read(driver, "replay"), _read(driver, "top")
        assert "old/a" not in replayed and replayed["d/g"][3] == {XATTR: b"changed"}
        assert replayed["d/m"][0] == "-rwx------" and replayed["d/hard"][5] == "d/f"
        assert replayed == wanted

    def test_nested_mounts_are_counted(self, store: Store) -> None:
        layer = store.create_layer(writeable=True)
        first = store.mount(layer.id)
        assert store.mount(layer.id) == first and store.mounted(layer.id) == 2
        assert store.unmount(layer.id) is True
        (Path(first) / "still").write_bytes(b"mounted")
        assert store.unmount(layer.id) is False and store.mounted(layer.id) == 0
        again = Path(store.mount(layer.id))
        try:
            assert (again / "still").read_bytes() == b"mounted"
        finally:
            store.unmount(layer.id)

    def test_removing_a_mounted_layer(self, driver: GraphDriver, store: Store) -> None:
        layer = store.create_layer(writeable=True)
        path = store.mount(layer.id)
        store.delete_layer(layer.id)
        assert store.layers() == [] and not store.driver.exists(layer.id)
        assert not store.driver.is_mounted(layer.id, path)
        # The driver alone too: Go's drivers unmount what they remove.
        drv = store.driver
        drv.create("direct", None, CreateOpts())
        mounted = drv.get("direct", MountOpts())
        drv.remove("direct")
        assert not drv.exists("direct") and "direct" not in drv.list_layers()
        assert not drv.is_mounted("direct", str(mounted))

    def test_update_layer_id_map_reowns_every_file(self, driver: GraphDriver) -> None:
        if os.geteuid() != 0:
            from cs_core.testing import require_privileged

            require_privileged("re-owning files needs root")
        _rich_base(driver)
        before = _read(driver, "base")
        maps = (IDMap(0, 100000, 65536),)
        driver.update_layer_id_map("base", ((), ()), (maps, maps))
        after = _read(driver, "base")
        assert set(after) == set(before)
        for path, (mode, uid, gid, xattrs, data, shared) in before.items():
            assert after[path] == (mode, uid + 100000, gid + 100000, xattrs, data, shared), path

    def test_selected_automatically_beside_a_broken_plugin(
        self, driver: GraphDriver, driver_config: DriverConfig,
    ) -> None:
        from cs_core.selection import select_driver

        driver.cleanup()  # selection makes instances of its own on the same home
        broken = metadata.EntryPoint(name="cs-conformance-broken", group=ENTRY_POINT_GROUP,
                                     value="cs_core_conformance_no_such_module")
        registry = PluginRegistry([broken, *entry_points(ENTRY_POINT_GROUP)])

        # As storage.conf's driver_priority lists it (in an empty graph root), then from the
        # driver's home left on disk.
        for root, priority in ((driver_config.graph_root / "fresh", (self.driver_name,)),
                               (driver_config.graph_root, ())):
            def config_for(name: str, root: Path = root) -> DriverConfig:
                return recordclass.evolve(driver_config, home=root / name, graph_root=root,
                                          run_home=driver_config.run_root / name)

            chosen = select_driver(registry, "", root, config_for, priority)
            try:
                assert chosen.name == self.driver_name
            finally:
                chosen.cleanup()
        assert "cs_core_conformance_no_such_module" in (registry.plugins[broken.name].error or "")
