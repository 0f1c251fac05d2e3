"""Per-layer quotas through qgroups, on a btrfs of their own (quotas are filesystem-wide)."""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

import pytest
from cs_btrfs import ioctl
from cs_btrfs.driver import BtrfsDriver

from cs_core.config import load_config_file
from cs_core.drivers.base import CreateOpts, MountOpts
from cs_core.errors import ConfigError
from cs_core.store import ContainerOptions, open_store
from cs_core.testing import go_cli_path

from .conftest import DriverFactory

MiB = 1 << 20


def _fill(path: Path, mib: int) -> int:
    """Write up to ``mib`` MiB of incompressible data, syncing as we go; return the errno hit (0 if none)."""
    try:
        with open(path, "wb") as fh:
            for _ in range(mib):
                fh.write(os.urandom(MiB))
                fh.flush()
                os.fsync(fh.fileno())
    except OSError as exc:
        return exc.errno or -1
    return 0


def test_size_storage_opt_limits_writes(make_quota_driver: DriverFactory) -> None:
    d = make_quota_driver()
    d.create("base", None, CreateOpts())
    d.create_read_write("ctr", "base", CreateOpts(storage_opt={"size": "10M"}))
    assert (d.home / "quotas" / "ctr").read_bytes() == b"10485760"  # Go: fmt.Sprint(uint64)
    assert oct(os.stat(d.home / "quotas").st_mode & 0o777) == "0o700"
    with ioctl.open_dir(d.home) as fd:
        assert ioctl.quota_enabled(fd)
    root = d.get("ctr", MountOpts())
    assert _fill(root / "small", 4) == 0
    assert _fill(root / "big", 30) == errno.EDQUOT
    # An unlimited sibling on the same filesystem is not affected.
    d.create_read_write("free", "base", CreateOpts())
    assert _fill(d.get("free", MountOpts()) / "big", 30) == 0
    # A full layer is still removable (the limit is lifted before deleting).
    d.remove("ctr")
    d.remove("free")
    d.remove("base")
    assert d.list_layers() == [] and os.listdir(d.home / "quotas") == []


def test_driver_size_option_is_the_container_default(make_quota_driver: DriverFactory) -> None:
    d = make_quota_driver("btrfs.size=8M")
    d.create("image", None, CreateOpts())
    assert not (d.home / "quotas" / "image").exists()  # image layers are never limited
    d.create_read_write("ctr", "image", CreateOpts())
    assert (d.home / "quotas" / "ctr").read_bytes() == str(8 * MiB).encode()
    assert _fill(d.get("ctr", MountOpts()) / "big", 20) == errno.EDQUOT
    d.create_read_write("bigger", "image", CreateOpts(storage_opt={"size": "64M"}))
    assert _fill(d.get("bigger", MountOpts()) / "big", 20) == 0


@pytest.mark.parametrize(("storage_opt", "message"), [
    ({"size": "1M"}, "btrfs: storage size cannot be less than 5.243MB"),
    ({"size": "0"}, "btrfs: invalid storage size: 0B"),
    ({"size": "10M", "foo": "bar"}, "unknown option foo"),
    ({"size": "huge"}, "invalid size: 'huge'"),
])
def test_bad_sizes_leave_nothing(make_quota_driver: DriverFactory, storage_opt: dict[str, str],
                                 message: str) -> None:
    d = make_quota_driver("btrfs.min_space=5M")
    with pytest.raises(ConfigError) as err:
        d.create_read_write("ctr", None, CreateOpts(storage_opt=storage_opt))
    assert str(err.value) == message
    assert not d.exists("ctr")


def test_get_reapplies_the_stored_limit(make_quota_driver: DriverFactory) -> None:
    d = make_quota_driver()
    d.create_read_write("ctr", None, CreateOpts(storage_opt={"size": "8M"}))
    with ioctl.open_dir(d.layer_dir("ctr")) as fd:
        ioctl.qgroup_limit(fd, ioctl.U64_MAX)  # limit lost (e.g. qgroups recreated)
    assert isinstance(d, BtrfsDriver)
    d.get("ctr", MountOpts())
    assert _fill(d.layer_dir("ctr") / "big", 20) == errno.EDQUOT


def test_store_with_btrfs_size_in_storage_conf_opens(quota_dir: Path) -> None:
    conf = quota_dir / "storage.conf"
    graph, run = quota_dir / "graph", quota_dir / "run"
    conf.write_text(f'[storage]\ndriver = "btrfs"\ngraphroot = "{graph}"\nrunroot = "{run}"\n'
                    '[storage.options.btrfs]\nsize = "8M"\n')
    options = load_config_file(str(conf))
    assert "btrfs.size=8M" in options.driver_options
    store = open_store(options)
    try:
        image_layer = store.create_layer()
        image = store.create_image(layer=image_layer.id)
        ctr = store.create_container(image=image.id)
        ctr2 = store.create_container(image=image.id, options=ContainerOptions(storage_opt={"size": "32M"}))
        quotas = graph / "btrfs" / "quotas"
        assert (quotas / ctr.layer).read_bytes() == str(8 * MiB).encode()
        assert (quotas / ctr2.layer).read_bytes() == str(32 * MiB).encode()
        root = Path(store.mount(ctr.id))
        assert _fill(root / "big", 20) == errno.EDQUOT
        store.unmount(ctr.id)
        store.delete_container(ctr.id)
        store.delete_container(ctr2.id)
    finally:
        store.shutdown(force=True)
    # Go 1.43 cannot open this configuration at all (its parser rejects btrfs.size).
    go = subprocess.run([go_cli_path(), "layers"], capture_output=True, text=True,
                        env={**os.environ, "CONTAINERS_STORAGE_CONF": str(conf)})
    assert go.returncode != 0 and "unknown option btrfs.size" in go.stdout + go.stderr
