"""The graph-driver conformance suite: the contract every driver must pass.

A driver package runs it by subclassing in its own tests::

    from cs_core.testing.conformance import GraphDriverConformance

    class TestMyDriver(GraphDriverConformance):
        driver_name = "mydriver"

Override the ``driver_config`` fixture to put the driver's home somewhere special (btrfs
needs a btrfs filesystem), ``driver_options`` for options, and the capability flags for what
the driver cannot do. Every test runs on a real filesystem through the plugin registry, so it
also checks that the driver's entry point registers it.
"""

from __future__ import annotations

import contextlib
import io
import os
import stat
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import pytest

from cs_core.drivers.base import ApplyDiffOpts, CreateOpts, DriverConfig, GraphDriver, MountOpts
from cs_core.drivers.plugins import PluginRegistry
from cs_core.errors import StorageError
from cs_core.model import Change
from cs_core.testing.conformance_meta import MetadataChecks
from cs_core.testing.tars import layer_tar

if TYPE_CHECKING:
    from cs_core.store import Store


def make_tar(entries: list[tuple[str, bytes | None, int]]) -> bytes:
    """A PAX tar of ``(name, data or None for a directory, mode)`` entries."""
    return layer_tar(entries)


def make_special_tar(with_device: bool) -> bytes:
    """A tar holding every non-regular entry type a layer can carry."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        def add(name: str, kind: bytes, data: bytes = b"", **fields: object) -> None:
            info = tarfile.TarInfo(name)
            info.type, info.mtime, info.mode = kind, 1_700_000_000, 0o644
            for key, value in fields.items():
                setattr(info, key, value)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data else None)

        add("d", tarfile.DIRTYPE, mode=0o750)
        add("d/target", tarfile.REGTYPE, b"target data", uid=1000, gid=100, mode=0o640)
        # Appliers chown/chmod the shared inode from the link's header too (as Go does), so
        # the link carries the target's metadata, as every tar writer emits it.
        add("d/hard", tarfile.LNKTYPE, linkname="d/target", uid=1000, gid=100, mode=0o640)
        add("d/sym", tarfile.SYMTYPE, linkname="target", mode=0o777)
        add("d/fifo", tarfile.FIFOTYPE, mode=0o600)
        if with_device:
            add("d/null", tarfile.CHRTYPE, mode=0o666, devmajor=1, devminor=3)
        # A name that needs a PAX record (over 100 bytes).
        add("d/" + "n" * 150, tarfile.REGTYPE, b"long")
    return buf.getvalue()


def _tree(root: Path) -> dict[str, tuple[str, bytes | str | None]]:
    """A comparable picture of a tree: kind and content per relative path."""
    out: dict[str, tuple[str, bytes | str | None]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            st = os.lstat(path)
            if stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", None)
            elif stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(path))
            elif stat.S_ISREG(st.st_mode):
                out[rel] = ("file", path.read_bytes())
            else:
                out[rel] = ("other", None)
    return out


class GraphDriverConformance(MetadataChecks):
    """Subclass with ``driver_name`` set; every ``test_*`` method checks one promise."""

    driver_name: ClassVar[str] = ""
    driver_options: ClassVar[tuple[str, ...]] = ()
    #: Drivers that really mount (overlay) refuse writes through read-only mounts.
    enforces_read_only_mounts: ClassVar[bool] = False
    #: Whether the driver needs root (mounts, ioctls).
    needs_root: ClassVar[bool] = False
    #: Whether layers can hold device nodes (checked only when running as root).
    supports_devices: ClassVar[bool] = True

    @pytest.fixture
    def driver_config(self, tmp_path: Path) -> DriverConfig:
        graph, run = tmp_path / "graph", tmp_path / "run"
        return DriverConfig(home=graph / self.driver_name, run_home=run / self.driver_name,
                            graph_root=graph, run_root=run, options=self.driver_options)

    @pytest.fixture
    def driver(self, driver_config: DriverConfig) -> Iterator[GraphDriver]:
        if self.needs_root:
            from cs_core.testing import require_privileged

            require_privileged(f"the {self.driver_name} driver needs root")
        cls = PluginRegistry().driver_class(self.driver_name)
        cls.probe(driver_config)
        drv = cls(driver_config)
        try:
            yield drv
        finally:
            for layer in drv.list_layers():
                with contextlib.suppress(Exception):
                    drv.put(layer)
            drv.cleanup()

    # -- helpers -----------------------------------------------------------------------------

    def _apply(self, drv: GraphDriver, id: str, parent: str | None, tar: bytes) -> None:
        drv.apply_diff(id, parent, io.BytesIO(tar), ApplyDiffOpts())

    def _read_tree(self, drv: GraphDriver, id: str) -> dict[str, tuple[str, bytes | str | None]]:
        root = drv.get(id, MountOpts(options=("ro",)))
        try:
            return _tree(root)
        finally:
            drv.put(id)

    # -- lifecycle ---------------------------------------------------------------------------

    def test_registered_under_its_name(self, driver: GraphDriver) -> None:
        assert driver.name == self.driver_name
        assert isinstance(driver.status(), list)
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in driver.status())

    def test_create_exists_list_remove(self, driver: GraphDriver) -> None:
        driver.create("base", None, CreateOpts())
        driver.create_read_write("rw", "base", CreateOpts())
        assert driver.exists("base") and driver.exists("rw")
        assert sorted(driver.list_layers()) == ["base", "rw"]
        assert isinstance(driver.metadata("base"), dict)
        driver.remove("rw")
        driver.remove("rw")  # removing twice is not an error
        assert not driver.exists("rw")
        driver.remove("base")
        assert driver.list_layers() == []

    def test_mount_write_and_persist(self, driver: GraphDriver) -> None:
        driver.create_read_write("l", None, CreateOpts())
        root = driver.get("l", MountOpts())
        (root / "hello").write_text("world")
        driver.put("l")
        assert self._read_tree(driver, "l")["hello"] == ("file", b"world")

    def test_read_only_mount(self, driver: GraphDriver) -> None:
        driver.create("l", None, CreateOpts())
        self._apply(driver, "l", None, make_tar([("f", b"x", 0o644)]))
        root = driver.get("l", MountOpts(options=("ro",)))
        try:
            assert (root / "f").read_bytes() == b"x"
            if self.enforces_read_only_mounts:
                with pytest.raises(OSError):
                    (root / "g").write_text("nope")
        finally:
            driver.put("l")

    def test_child_is_copy_on_write(self, driver: GraphDriver) -> None:
        driver.create("parent", None, CreateOpts())
        self._apply(driver, "parent", None, make_tar([("shared", b"parent", 0o644)]))
        driver.create_read_write("child", "parent", CreateOpts())
        root = driver.get("child", MountOpts())
        try:
            assert (root / "shared").read_bytes() == b"parent"
            (root / "shared").write_bytes(b"child")
            (root / "new").write_bytes(b"n")
        finally:
            driver.put("child")
        assert self._read_tree(driver, "parent") == {"shared": ("file", b"parent")}
        assert self._read_tree(driver, "child")["shared"] == ("file", b"child")

    def test_create_from_template_copies_contents(self, driver: GraphDriver) -> None:
        driver.create("base", None, CreateOpts())
        self._apply(driver, "base", None, make_tar([("gone", b"g", 0o644), ("kept", b"k", 0o644)]))
        driver.create("template", "base", CreateOpts())
        self._apply(driver, "template", "base", make_tar([
            (".wh.gone", b"", 0o644), ("d", None, 0o750), ("d/f", b"template", 0o640),
        ]))
        wanted = self._read_tree(driver, "template")
        assert "gone" not in wanted
        for read_write in (False, True):
            copy = f"copy-{read_write}"
            driver.create_from_template(copy, "template", ((), ()), "base", ((), ()),
                                        CreateOpts(), read_write)
            assert driver.exists(copy)
            assert self._read_tree(driver, copy) == wanted
            # The copy is a layer of its own: writing to it leaves the template alone.
            root = driver.get(copy, MountOpts())
            try:
                (root / "d" / "f").write_bytes(b"copy")
            finally:
                driver.put(copy)
            assert self._read_tree(driver, "template") == wanted
            driver.remove(copy)

    # -- content -----------------------------------------------------------------------------

    def test_apply_diff_entry_types_and_whiteouts(self, driver: GraphDriver) -> None:
        driver.create("base", None, CreateOpts())
        self._apply(driver, "base", None, make_tar([
            ("etc", None, 0o755), ("etc/keep", b"k", 0o644), ("etc/gone", b"g", 0o600),
            ("opq", None, 0o755), ("opq/hidden", b"h", 0o644), ("bin", None, 0o755),
            ("bin/tool", b"#!/bin/sh\n", 0o755),
        ]))
        driver.create("top", "base", CreateOpts())
        result = driver.apply_diff("top", "base", io.BytesIO(make_tar([
            ("etc/.wh.gone", b"", 0o644), ("opq", None, 0o755), ("opq/.wh..wh..opq", b"", 0o644),
            ("opq/fresh", b"f", 0o644), ("etc/added", b"a", 0o640),
        ])), ApplyDiffOpts())
        assert result.size > 0 and result.uids == (0,)
        tree = self._read_tree(driver, "top")
        assert "etc/gone" not in tree and "opq/hidden" not in tree
        assert tree["opq/fresh"] == ("file", b"f") and tree["etc/keep"] == ("file", b"k")
        assert tree["etc/added"] == ("file", b"a") and tree["bin/tool"][0] == "file"

    def test_changes_and_diff_round_trip(self, driver: GraphDriver) -> None:
        driver.create("base", None, CreateOpts())
        self._apply(driver, "base", None, make_tar([
            ("a", None, 0o755), ("a/old", b"1", 0o644), ("keep", b"k", 0o644),
        ]))
        driver.create_read_write("top", "base", CreateOpts())
        root = driver.get("top", MountOpts())
        try:
            (root / "a" / "old").unlink()
            (root / "a" / "new").write_bytes(b"2")
            (root / "keep").write_bytes(b"changed!")
        finally:
            driver.put("top")
        found = {(c.path, c.kind) for c in driver.changes("top", "base")}
        assert ("/a/old", Change.DELETE) in found
        assert ("/a/new", Change.ADD) in found
        assert ("/keep", Change.MODIFY) in found
        assert driver.diff_size("top", "base") >= len(b"changed!") + 1
        stream = driver.diff("top", "base")
        try:
            diff = stream.read()
        finally:
            stream.close()
        # Applying the diff onto a fresh child of the same parent reproduces the tree.
        driver.create("replay", "base", CreateOpts())
        self._apply(driver, "replay", "base", diff)
        assert self._read_tree(driver, "replay") == self._read_tree(driver, "top")

    def test_diff_getter_reads_layer_files(self, driver: GraphDriver) -> None:
        driver.create("base", None, CreateOpts())
        self._apply(driver, "base", None, make_tar([("d", None, 0o755), ("d/f", b"payload", 0o644)]))
        getter = driver.diff_getter("base")
        try:
            with getter.open("d/f") as fh:
                assert fh.read() == b"payload"
        finally:
            getter.close()

    def test_deep_chain(self, driver: GraphDriver) -> None:
        parent = None
        for i in range(20):
            driver.create(f"l{i}", parent, CreateOpts())
            self._apply(driver, f"l{i}", parent, make_tar([(f"file{i}", str(i).encode(), 0o644)]))
            parent = f"l{i}"
        tree = self._read_tree(driver, "l19")
        assert all(tree[f"file{i}"] == ("file", str(i).encode()) for i in range(20))

    def test_many_files(self, driver: GraphDriver) -> None:
        entries: list[tuple[str, bytes | None, int]] = [("many", None, 0o755)]
        entries += [(f"many/f{i:05d}", b"x" * (i % 7), 0o644) for i in range(3000)]
        driver.create("l", None, CreateOpts())
        self._apply(driver, "l", None, make_tar(entries))
        assert len(self._read_tree(driver, "l")) == 3001

    def test_apply_diff_special_entries(self, driver: GraphDriver) -> None:
        with_device = self.supports_devices and os.geteuid() == 0
        driver.create("l", None, CreateOpts())
        result = driver.apply_diff("l", None, io.BytesIO(make_special_tar(with_device)),
                                   ApplyDiffOpts())
        assert 1000 in result.uids and 100 in result.gids
        root = driver.get("l", MountOpts(options=("ro",)))
        try:
            d = root / "d"
            target = os.lstat(d / "target")
            assert stat.S_IMODE(os.lstat(d).st_mode) == 0o750
            assert stat.S_IMODE(target.st_mode) == 0o640
            assert target.st_mtime == 1_700_000_000
            if os.geteuid() == 0:
                assert (target.st_uid, target.st_gid) == (1000, 100)
            assert os.lstat(d / "hard").st_ino == target.st_ino
            assert target.st_nlink == 2
            assert os.readlink(d / "sym") == "target"
            assert stat.S_ISFIFO(os.lstat(d / "fifo").st_mode)
            assert (d / ("n" * 150)).read_bytes() == b"long"
            if with_device:
                dev = os.lstat(d / "null")
                assert stat.S_ISCHR(dev.st_mode) and dev.st_rdev == os.makedev(1, 3)
        finally:
            driver.put("l")

    def test_base_layer_changes_are_all_adds(self, driver: GraphDriver) -> None:
        driver.create("l", None, CreateOpts())
        self._apply(driver, "l", None, make_tar([("d", None, 0o755), ("d/f", b"12345", 0o644)]))
        changes = driver.changes("l", None)
        assert {(c.path, c.kind) for c in changes} == {("/d", Change.ADD), ("/d/f", Change.ADD)}
        assert driver.diff_size("l", None) == 5

    def test_unknown_option_is_refused(self, driver_config: DriverConfig) -> None:
        if self.needs_root:
            from cs_core.testing import require_privileged

            require_privileged(f"the {self.driver_name} driver needs root")
        cls = PluginRegistry().driver_class(self.driver_name)
        bad = (*driver_config.options, f"{self.driver_name}.no_such_option=1")
        with pytest.raises(StorageError, match="no_such_option"):
            cls(DriverConfig(home=driver_config.home, run_home=driver_config.run_home,
                             graph_root=driver_config.graph_root, run_root=driver_config.run_root,
                             options=bad))

    def test_missing_layer_errors(self, driver: GraphDriver) -> None:
        assert not driver.exists("missing")
        with pytest.raises(StorageError):
            driver.get("missing", MountOpts())
        driver.remove("missing")  # removing what is not there is not an error

    def test_apply_gnu_tar_stream(self, driver: GraphDriver, tmp_path: Path) -> None:
        from cs_core.testing import requires_command

        requires_command("tar")
        src = tmp_path / "gnu-src"
        (src / "etc" / "deep" / "er").mkdir(parents=True)
        (src / "etc" / "conf").write_text("x=1\n")
        (src / "etc" / "deep" / "er" / "big").write_bytes(bytes(range(256)) * 4096)
        (src / "etc" / "rel").symlink_to("deep/er/big")
        os.link(src / "etc" / "conf", src / "etc" / "conf.hard")
        os.chmod(src / "etc" / "deep", 0o700)
        done = subprocess.run(["tar", "--format=pax", "-C", str(src), "-cf", "-", "etc"],
                              capture_output=True, check=True)
        driver.create("l", None, CreateOpts())
        self._apply(driver, "l", None, done.stdout)
        tree = self._read_tree(driver, "l")
        assert tree == _tree(src)
        root = driver.get("l", MountOpts(options=("ro",)))
        try:
            for rel in ("etc", "etc/deep", "etc/conf", "etc/deep/er/big"):
                assert os.lstat(root / rel).st_mode == os.lstat(src / rel).st_mode, rel
                assert os.lstat(root / rel).st_mtime_ns // 10**9 == os.lstat(src / rel).st_mtime_ns // 10**9
            assert os.lstat(root / "etc/conf").st_ino == os.lstat(root / "etc/conf.hard").st_ino
        finally:
            driver.put("l")
        # A base layer's diff is its whole tree: replayed into a fresh base layer, it is equal.
        stream = driver.diff("l", None)
        try:
            diff = stream.read()
        finally:
            stream.close()
        driver.create("replay", None, CreateOpts())
        self._apply(driver, "replay", None, diff)
        assert self._read_tree(driver, "replay") == tree

    # -- through the store -------------------------------------------------------------------

    @pytest.fixture
    def store(self, driver: GraphDriver, driver_config: DriverConfig) -> Iterator[Store]:
        driver.cleanup()  # the store opens its own driver instance on the same home
        from cs_core.store import open_store

        opened = open_store(graph_root=str(driver_config.graph_root),
                            run_root=str(driver_config.run_root), driver_name=self.driver_name,
                            driver_options=driver_config.options, registry=PluginRegistry())
        try:
            yield opened
        finally:
            opened.shutdown(force=True)

    def test_store_image_container_round_trip(self, store: Store) -> None:
        assert store.driver_name == self.driver_name
        base = store.put_layer(names=("base",), diff=io.BytesIO(make_tar([
            ("etc", None, 0o755), ("etc/os-release", b"ID=test\n", 0o644),
        ])))
        image = store.create_image(names=("img:latest",), layer=base.id)
        container = store.create_container(names=("ctr",), image=image.id)
        root = Path(store.mount(container.id))
        try:
            assert (root / "etc" / "os-release").read_bytes() == b"ID=test\n"
            (root / "etc" / "os-release").unlink()
            (root / "written").write_bytes(b"by the container")
        finally:
            assert store.unmount(container.id) is False
        # The container's layer keeps its writes; the image's layer does not see them.
        root = Path(store.mount(container.id))
        try:
            assert (root / "written").read_bytes() == b"by the container"
        finally:
            store.unmount(container.id)
        kinds = {(c.path, c.kind) for c in store.changes(None, container.layer)}
        assert kinds == {("/etc", Change.MODIFY), ("/etc/os-release", Change.DELETE),
                         ("/written", Change.ADD)}
        out = io.BytesIO()
        store.diff(None, container.layer, out)
        with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
            names = set(tar.getnames())
        assert {"written", "etc/.wh.os-release"} <= names
        image_root = Path(store.mount_image(image.id))
        try:
            assert not (image_root / "written").exists()
            assert (image_root / "etc" / "os-release").exists()
        finally:
            store.unmount_image(image.id, force=True)
        store.delete_container(container.id)
        assert store.delete_image(image.id) == [base.id]
        assert store.layers() == [] and store.driver.list_layers() == []

    def test_staged_layer_or_not_supported(self, store: Store) -> None:
        """A driver with the staging capability moves staged content into a new layer whole
        (records and diff included); any other driver refuses with Go's ErrNotSupported."""
        from cs_core.drivers.staging import StagingDriver, TarDiffer
        from cs_core.errors import NotSupported
        from cs_core.store.staged import ApplyStagedLayerOptions

        base = store.put_layer(diff=io.BytesIO(make_tar([("keep", b"k", 0o644),
                                                         ("gone", b"g", 0o644)])))
        blob = make_tar([("d", None, 0o755), ("d/f", b"staged", 0o600), (".wh.gone", b"", 0o644)])
        if not isinstance(store.driver, StagingDriver):
            with pytest.raises(NotSupported):
                store.prepare_staged_layer(TarDiffer(io.BytesIO(blob)))
            assert [layer.id for layer in store.layers()] == [base.id]
            return
        staged = store.prepare_staged_layer(TarDiffer(io.BytesIO(blob)))
        layer = store.apply_staged_layer(ApplyStagedLayerOptions(diff_output=staged,
                                                                 parent_layer=base.id))
        assert not staged.target.exists()
        assert layer.uncompressed_size == len(blob) and layer.uidset == [0]
        root = Path(store.mount(layer.id))
        try:
            assert _tree(root) == {"d": ("dir", None), "d/f": ("file", b"staged"),
                                   "keep": ("file", b"k")}
        finally:
            store.unmount(layer.id)
        out = io.BytesIO()
        store.diff(None, layer.id, out)
        assert out.getvalue() == blob
