"""Errors that say what to do: a missing driver names its package, the setting that asked
for it and what is installed; a corrupt bookkeeping file says how to recover."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from cs_core import errors
from cs_core.drivers.plugins import PluginRegistry
from cs_core.store import open_store

ROOT = Path(__file__).resolve().parents[1]


def _only(*names: str) -> PluginRegistry:
    """A registry over just these of our plugins' entry points (the others not installed)."""
    return PluginRegistry(entry_points=[
        EntryPoint(name=n, value=f"cs_{n}.hooks", group="cs_core") for n in names])


def _missing(tmp_path: Path, registry: PluginRegistry, **kw: str) -> str:
    with pytest.raises(errors.DriverNotInstalled) as info:
        open_store(registry=registry, **kw)
    text = str(info.value)
    assert not text.endswith(": not supported") and "\n" not in text
    return text


def test_a_named_driver_that_is_not_installed(tmp_path: Path) -> None:
    text = _missing(tmp_path, _only("overlay"), graph_root=str(tmp_path / "g"),
                    run_root=str(tmp_path / "r"), driver_name="vfs")
    assert text == ('graph driver "vfs" is not installed (asked for by -s/--storage-driver, or '
                    "driver_name= in the API): pip install cs-vfs; installed drivers: overlay")
    assert isinstance(errors.DriverNotInstalled(), errors.NotSupported)


def test_a_driver_storage_conf_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conf = tmp_path / "storage.conf"
    conf.write_text(f'[storage]\ndriver = "vfs"\ngraphroot = "{tmp_path / "g"}"\n'
                    f'runroot = "{tmp_path / "r"}"\n')
    monkeypatch.setenv("CONTAINERS_STORAGE_CONF", str(conf))
    monkeypatch.delenv("STORAGE_DRIVER", raising=False)
    text = _missing(tmp_path, _only("overlay"))
    assert f'(asked for by driver = "vfs" in {conf}): pip install cs-vfs' in text
    monkeypatch.setenv("STORAGE_DRIVER", "btrfs")
    text = _missing(tmp_path, _only("overlay"))
    assert "(asked for by STORAGE_DRIVER in the environment): pip install cs-btrfs" in text


def test_an_existing_store_of_a_driver_no_longer_installed(tmp_path: Path) -> None:
    graph, run = tmp_path / "g", tmp_path / "r"
    with open_store(graph_root=str(graph), run_root=str(run), driver_name="vfs") as store:
        store.create_layer()
    text = _missing(tmp_path, _only("btrfs"), graph_root=str(graph), run_root=str(run))
    assert text == (f'graph driver "vfs" is not installed (asked for by the vfs store already '
                    f"in {graph / 'vfs'}): pip install cs-vfs; installed drivers: btrfs")


def test_no_driver_installed_at_all(tmp_path: Path) -> None:
    text = _missing(tmp_path, _only(), graph_root=str(tmp_path / "g"),
                    run_root=str(tmp_path / "r"))
    assert text == ("no graph driver is installed: pip install cs-overlay or pip install cs-vfs "
                    "or pip install cs-btrfs")


def test_several_drivers_message_has_no_generic_suffix(tmp_path: Path) -> None:
    graph = tmp_path / "g"
    (graph / "vfs").mkdir(parents=True)
    (graph / "btrfs").mkdir()
    with pytest.raises(errors.DriverError) as info:
        open_store(graph_root=str(graph), run_root=str(tmp_path / "r"))
    assert str(info.value) == (f"{graph} contains several valid graphdrivers: btrfs, vfs; "
                               "Please cleanup or explicitly choose storage driver (-s <DRIVER>)")


def _python_without_plugins(tmp_path: Path) -> list[str]:
    """Python that finds cs_core and its dependencies but no plugin distribution."""
    site = tmp_path / "site"
    site.mkdir()
    for name in ("click", "attr", "attrs", "cattrs", "pluggy"):
        spec = importlib.util.find_spec(name)
        assert spec is not None and spec.submodule_search_locations
        (site / name).symlink_to(next(iter(spec.submodule_search_locations)))
    (site / "cs_core").symlink_to(ROOT / "cs_core")
    return [sys.executable, "-S", "-c",
            f"import sys; sys.path[:0] = [{str(site)!r}]; from cs_core.cli.main import main; main()"]


def test_plugins_with_none_installed_says_so(tmp_path: Path) -> None:
    python = _python_without_plugins(tmp_path)
    proc = subprocess.run([*python, "plugins"], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": ""})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ("no plugins installed (so no graph drivers): pip install cs-overlay "
                           "or cs-vfs or cs-btrfs\n")
    proc = subprocess.run([*python, "-g", str(tmp_path / "g"), "-R", str(tmp_path / "r"),
                           "-s", "vfs", "layers"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stdout == ('error initializing: graph driver "vfs" is not installed (asked for '
                           "by -s/--storage-driver, or driver_name= in the API): pip install "
                           "cs-vfs; installed drivers: none\n")


@pytest.mark.parametrize(("name", "hint"), [
    ("vfs-layers/layers.json", "restore {p} from a backup, or move it aside, which forgets its "
                               "layers (`containers-storage check` then lists what used them)"),
    ("vfs-images/images.json", "restore {p} from a backup, or move it aside, which forgets its "
                               "images (their layers stay)"),
    ("vfs-containers/containers.json", "restore {p} from a backup, or move it aside, which "
                                       "forgets its containers (their layers stay)"),
])
def test_a_corrupt_record_file_says_how_to_recover(tmp_path: Path, name: str, hint: str) -> None:
    graph, run = tmp_path / "g", tmp_path / "r"
    with open_store(graph_root=str(graph), run_root=str(run), driver_name="vfs") as store:
        layer = store.create_layer()
        image = store.create_image(layer=layer.id)
        store.create_container(image=image.id)
    path = graph / name
    path.write_text('[{"id": ')
    with pytest.raises(errors.CorruptRecordFile) as info:
        with open_store(graph_root=str(graph), run_root=str(run), driver_name="vfs") as store:
            store.layers(), store.images(), store.containers()
    assert str(info.value).startswith(f"loading {path}: ")
    assert str(info.value).endswith(": corrupt bookkeeping file; " + hint.format(p=path))
    assert path.read_text() == '[{"id": '  # never overwritten


def test_a_corrupt_mount_count_file_may_be_removed(tmp_path: Path) -> None:
    graph, run = tmp_path / "g", tmp_path / "r"
    with open_store(graph_root=str(graph), run_root=str(run), driver_name="vfs") as store:
        layer = store.create_layer()
        with store.mounting(layer.id):
            pass
    path = run / "vfs-layers" / "mountpoints.json"
    path.write_text("{oops")
    with pytest.raises(errors.CorruptRecordFile) as info:
        with open_store(graph_root=str(graph), run_root=str(run), driver_name="vfs") as store:
            store.mounted(layer.id)
    assert str(info.value).endswith(f"; it holds only mount counts: with nothing mounted, "
                                    f"remove {path}")
