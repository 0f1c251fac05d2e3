"""The library API a Python tool author meets: errors to catch, context managers, diffs as
files and iterators, close(), incomplete options. All on real stores."""

from __future__ import annotations

import errno
import io
import os
import subprocess
import sys
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import cs_core
from cs_core import errors
from cs_core.archive.compression import Compression
from cs_core.store import Store, open_store
from cs_core.testing.tars import layer_tar


@pytest.fixture
def store(store_roots: tuple[Path, Path], driver_name: str) -> Iterator[Store]:
    graph, run = store_roots
    with open_store(graph_root=str(graph), run_root=str(run), driver_name=driver_name) as s:
        yield s


def _reopen(store_roots: tuple[Path, Path], driver_name: str) -> Store:
    graph, run = store_roots
    return open_store(graph_root=str(graph), run_root=str(run), driver_name=driver_name)


# -- the exception hierarchy --------------------------------------------------------------


def test_lookups_raise_not_found_which_is_a_key_error(store: Store) -> None:
    cases: list[tuple[Callable[[], object], type[errors.NotFound], str]] = [
        (lambda: store.layer("nope"), errors.LayerUnknown, "layer not known"),
        (lambda: store.image("nope"), errors.ImageUnknown, "image not known"),
        (lambda: store.container("nope"), errors.ContainerUnknown, "container not known"),
        (lambda: store.create_layer(parent="nope"), errors.LayerUnknown, "layer not known"),
    ]
    for call, kind, text in cases:
        with pytest.raises(KeyError) as info:
            call()
        assert isinstance(info.value, kind) and isinstance(info.value, errors.StorageError)
        assert str(info.value) == text  # not KeyError's quoted repr
    with pytest.raises(errors.NotFound):
        store.delete("nope")


def test_taken_ids_and_names_raise_already_exists_a_file_exists_error(store: Store) -> None:
    store.create_layer(id="fixed", names=["n"])
    with pytest.raises(FileExistsError) as info:
        store.create_layer(id="fixed")
    assert isinstance(info.value, errors.DuplicateID)
    assert info.value.errno == errno.EEXIST and str(info.value) == "that ID is already in use"
    with pytest.raises(errors.NameInUse) as named:
        store.create_layer(names=["n"])
    assert isinstance(named.value, errors.AlreadyExists)
    assert str(named.value) == "that name is already in use"


def test_still_needed_items_raise_in_use(store: Store) -> None:
    base = store.create_layer()
    store.create_layer(parent=base.id)
    with pytest.raises(errors.InUse) as info:
        store.delete_layer(base.id)
    assert isinstance(info.value, errors.LayerHasChildren)
    image = store.create_image(layer=base.id)
    store.create_container(image=image.id)
    with pytest.raises(errors.InUse):
        store.delete_image(image.id)


def test_a_bad_id_is_a_value_error(store: Store) -> None:
    with pytest.raises(ValueError) as info:
        store.create_layer(id="../escape")
    assert isinstance(info.value, errors.InvalidID)


def test_wrapped_errors_keep_their_groups() -> None:
    wrapped = errors.LayerUnknown().wrap("locating x")
    assert isinstance(wrapped, KeyError) and str(wrapped) == "locating x: layer not known"
    dup = errors.DuplicateName("x").wrap("adding")
    assert isinstance(dup, FileExistsError) and dup.errno == errno.EEXIST


@pytest.mark.interop
def test_cli_messages_and_exit_codes_are_gos(tmp_path: Path) -> None:
    from cs_core.testing.gocli import go_cli_path

    def run(program: list[str], root: Path, *args: str) -> tuple[int, str]:
        proc = subprocess.run([*program, "-g", str(root / "g"), "-R", str(root / "r"), "-s",
                               "vfs", *args], capture_output=True, text=True, timeout=120)
        return proc.returncode, proc.stderr

    ours, go = [sys.executable, "-m", "cs_core"], [go_cli_path()]
    for program, root in ((ours, tmp_path / "ours"), (go, tmp_path / "go")):
        assert run(program, root, "create-layer", "-n", "x")[0] == 0
    for args in (("create-layer", "-n", "x"), ("delete-layer", "nope"), ("layer", "nope"),
                 ("image", "nope"), ("delete-image", "nope"), ("mount", "nope")):
        assert run(ours, tmp_path / "ours", *args) == run(go, tmp_path / "go", *args), args


# -- open_store, with, close --------------------------------------------------------------


def test_open_store_refuses_one_root_without_the_other(tmp_path: Path) -> None:
    with pytest.raises(errors.IncompleteOptions, match="graph_root given without run_root"):
        open_store(graph_root=str(tmp_path / "g"))
    with pytest.raises(errors.IncompleteOptions, match="run_root given without graph_root"):
        open_store(run_root=str(tmp_path / "r"))
    with pytest.raises(errors.IncompleteOptions,
                       match=r"^no storage runroot or graphroot specified: missing necessary"):
        open_store(driver_name="vfs")
    assert not (tmp_path / "g").exists() and not (tmp_path / "r").exists()


def test_close_refuses_later_use_and_is_idempotent(store_roots: tuple[Path, Path],
                                                     driver_name: str) -> None:
    with _reopen(store_roots, driver_name) as store:
        layer = store.create_layer()
    for call in (store.layers, lambda: store.layer(layer.id), store.images,
                 lambda: store.mount(layer.id), lambda: store.delete_layer(layer.id)):
        with pytest.raises(errors.StoreClosed, match=r"^store is closed$"):
            call()
    store.close()
    again = _reopen(store_roots, driver_name)
    try:
        assert [x.id for x in again.layers()] == [layer.id]  # nothing was lost
    finally:
        again.close()


def _mount_points() -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f]


@pytest.mark.privileged
def test_close_releases_overlays_home_mount(store_roots: tuple[Path, Path]) -> None:
    from cs_core.testing import require_privileged

    require_privileged("overlay needs root")
    graph, _ = store_roots
    store = _reopen(store_roots, "overlay")
    home = str(graph / "overlay")
    try:
        store.create_layer()
        assert _mount_points().count(home) == 1  # Go's overlay makes its home a private mount
        store.close()
        assert home not in _mount_points()
    finally:
        if home in _mount_points():
            subprocess.run(["umount", home], check=False)


def test_close_keeps_the_driver_while_a_layer_is_mounted(store_roots: tuple[Path, Path],
                                                          driver_name: str) -> None:
    first = _reopen(store_roots, driver_name)
    layer = first.create_layer()
    path = first.mount(layer.id)
    first.close()  # Go's Shutdown(false) refuses here; close() keeps what is mounted
    second = _reopen(store_roots, driver_name)
    try:
        assert second.mounted(layer.id) == 1 and os.path.isdir(path)
        assert not second.unmount(layer.id)
    finally:
        second.shutdown(force=True)


# -- store.mounting -----------------------------------------------------------------------


def test_mounting_unmounts_at_the_end_even_on_error(store: Store) -> None:
    layer = store.put_layer(writeable=True, diff=io.BytesIO(layer_tar([("f", b"data")])))
    with store.mounting(layer.id) as path:
        assert (Path(path) / "f").read_bytes() == b"data"
        assert store.mounted(layer.id) == 1
    assert store.mounted(layer.id) == 0
    with pytest.raises(RuntimeError), store.mounting(layer.id):
        assert store.mounted(layer.id) == 1
        raise RuntimeError("boom")
    assert store.mounted(layer.id) == 0


# -- diffs as file objects and iterators --------------------------------------------------


def _big_layer(store: Store) -> tuple[str, bytes]:
    tar = layer_tar([("a", os.urandom(3 << 20)), ("dir", None), ("dir/b", b"small")])
    return store.put_layer(diff=io.BytesIO(tar)).id, tar


def test_diff_reader_and_iter_diff_give_the_layers_tar(store: Store) -> None:
    layer_id, tar = _big_layer(store)
    with store.diff_reader(None, layer_id, Compression.NONE) as f:
        assert f.read() == tar
    assert b"".join(store.iter_diff(None, layer_id, Compression.NONE, chunk_size=4096)) == tar
    with store.diff_reader(None, layer_id, Compression.NONE) as f, \
            tarfile.open(fileobj=f, mode="r|") as archive:
        assert [m.name for m in archive] == ["a", "dir", "dir/b"]


def test_diff_reader_closed_early_releases_the_store(store: Store) -> None:
    layer_id, _ = _big_layer(store)
    f = store.diff_reader(None, layer_id, Compression.NONE)
    assert len(f.read(1000)) == 1000
    f.close()  # the writer thread stops and lets go of the layer store's lock
    store.delete_layer(layer_id)
    assert store.layers() == []


def test_diff_reader_of_an_unknown_layer_fails_at_once(store: Store) -> None:
    with pytest.raises(errors.LayerUnknown):
        store.diff_reader(None, "nope")


def test_diff_reader_raises_the_writers_error_at_the_end(store: Store) -> None:
    layer_id, _ = _big_layer(store)
    parent = store.create_layer()
    # A missing "from" layer is found by the writer thread: the reader must not see a
    # clean, empty end of file.
    f = store.diff_reader("no-such-from-layer", layer_id)
    with pytest.raises(errors.LayerUnknown):
        f.read()
    f.close()
    assert store.layer(parent.id)


def test_version_is_the_packages() -> None:
    from importlib.metadata import version

    assert cs_core.__version__ == version("cs-core")
