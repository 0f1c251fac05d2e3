"""Store modes: transient store bookkeeping under the runroot, and ID-mapped layers/containers."""

from __future__ import annotations

import datetime as _dt
import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cs_core.config import StoreOptions
from cs_core.errors import ImageUnknown, LayerUnknown
from cs_core.model import IDMap
from cs_core.store import ContainerOptions, ImageOptions, LayerOptions, Store, open_store
from cs_core.testing.owners import owners_in_diff, owners_through_mount
from cs_core.testing.tars import owned_file_tar


def test_transient_store_keeps_containers_under_the_runroot(tmp_path: Path) -> None:
    graph, run = tmp_path / "g", tmp_path / "r"
    store = open_store(StoreOptions(graph_root=str(graph), run_root=str(run), driver_name="vfs",
                                    transient_store=True))
    try:
        image = store.create_image(layer=store.create_layer().id)
        container = store.create_container(names=["t"], image=image.id)
        assert container.flags.get("Volatile") is True
        volatile = json.loads((run / "vfs-containers" / "volatile-containers.json").read_text())
        assert [c["id"] for c in volatile] == [container.id]
        assert (run / "vfs-containers" / "containers.lock").exists()
        layers = json.loads((run / "vfs-layers" / "volatile-layers.json").read_text())
        assert [x["id"] for x in layers] == [container.layer]
        stable = graph / "vfs-containers" / "containers.json"
        assert not stable.exists() or json.loads(stable.read_text()) == []
        store.delete_container("t")
        assert store.containers() == []
    finally:
        store.shutdown(force=True)


def test_layer_applied_with_maps_is_owned_by_host_ids(tmp_path: Path) -> None:
    from cs_core.testing import require_privileged

    require_privileged("chown to other users needs root")
    store = open_store(graph_root=str(tmp_path / "g"), run_root=str(tmp_path / "r"), driver_name="vfs")
    try:
        maps = [IDMap(0, 100000, 65536)]
        layer = store.put_layer(options=LayerOptions(uid_map=maps, gid_map=maps),
                                diff=io.BytesIO(owned_file_tar(10, 20)))
        rec = store.layer(layer.id)
        assert rec.uid_map == maps and rec.uidset == [10] and rec.gidset == [20]
        assert owners_through_mount(store, layer.id, "owned") == (100010, 100020)
        # A container with other maps gets its files re-owned for its namespace.
        image = store.create_image(layer=layer.id)
        other = [IDMap(0, 200000, 65536)]
        container = store.create_container(image=image.id,
                                           options=ContainerOptions(uid_map=other, gid_map=other))
        assert owners_through_mount(store, container.id, "owned") == (200010, 200020)
        # The diff carries container IDs again, whatever the host ownership.
        assert owners_in_diff(store, layer.id, "owned") == (10, 20)
    finally:
        store.shutdown(force=True)


# -- read-only (additional) image stores, split image stores, transient stores -------------


@pytest.fixture
def open_opts(driver_name: str) -> Iterator[Callable[..., Store]]:
    """Open stores with the test's driver and any options; all are shut down at teardown."""
    opened: list[Store] = []

    def make(graph: Path, run: Path, **kw: object) -> Store:
        store = open_store(StoreOptions(graph_root=str(graph), run_root=str(run),
                                        driver_name=driver_name, **kw))  # type: ignore[arg-type]
        opened.append(store)
        return store

    yield make
    for store in reversed(opened):
        store.shutdown(force=True)


def _with_ro_root(open_opts: Callable[..., Store], tmp_path: Path, **kw: object) -> Store:
    """A store using ``tmp_path/ro`` as an additional (read-only) image store."""
    driver = open_opts(tmp_path / "ro", tmp_path / "ro-run").driver_name
    return open_opts(tmp_path / "g", tmp_path / "r",
                     driver_options=[f"{driver}.imagestore={tmp_path / 'ro'}"], **kw)


def test_names_of_a_read_only_image_change_through_a_pulled_up_copy(
        open_opts: Callable[..., Store], tmp_path: Path) -> None:
    ro = open_opts(tmp_path / "ro", tmp_path / "ro-run")
    image = ro.create_image(names=["foo", "bar", "new"], layer=ro.create_layer().id,
                            metadata="meta", options=ImageOptions(big_data={"config": b"cfg"}))
    ro_file = ro.graph_root / f"{ro.driver_name}-images" / "images.json"
    ro.shutdown()
    before = ro_file.read_bytes()

    store = _with_ro_root(open_opts, tmp_path)
    store.add_names(image.id, ["other"])
    store.remove_names(image.id, ["new"])
    for name in ("foo", "bar", "other", image.id):
        assert store.image(name).id == image.id
    with pytest.raises(ImageUnknown):
        store.image("new")  # removed from the copy, which shadows the read-only record
    with pytest.raises(LayerUnknown):
        store.add_names("new", ["again"])  # ... and pulls nothing up a second time
    assert [i.id for i in store.images()] == [image.id]
    assert store.names(image.id) == ["other", "foo", "bar"]
    assert store.image(image.id).metadata == "meta"
    assert store.image_big_data(image.id, "config") == b"cfg"
    assert ro_file.read_bytes() == before  # the read-only store is left alone


def test_creating_a_read_only_images_id_pulls_it_up(
        open_opts: Callable[..., Store], tmp_path: Path) -> None:
    ro = open_opts(tmp_path / "ro", tmp_path / "ro-run")
    image = ro.create_image(names=["ro-name"], metadata="ro-meta",
                            options=ImageOptions(big_data={"config": b"cfg"}))
    ro.shutdown()

    store = _with_ro_root(open_opts, tmp_path)
    other = store.create_image(names=["taken"])
    created = store.create_image(id=image.id, names=["mine"])
    assert created.metadata == "ro-meta" and created.created == image.created
    assert created.big_data_names == ["config"]
    assert store.image_big_data(image.id, "config") == b"cfg"
    assert sorted(store.names(image.id)) == ["mine", "ro-name"]
    # A later pulled-up name is taken from the image that held it, as HEAD's add does.
    store.add_names(image.id, ["taken"])
    assert store.names(other.id) == []


def test_split_image_store_keeps_seeing_the_graph_roots_images(
        open_opts: Callable[..., Store], tmp_path: Path) -> None:
    graph, run, split = tmp_path / "g", tmp_path / "r", tmp_path / "images"
    plain = open_opts(graph, run)
    image = plain.create_image(names=["wonderful"])
    plain.set_image_big_data(image.id, "random1", b"one")
    plain.set_image_big_data(image.id, "random2", b"two")
    plain.shutdown()

    store = open_opts(graph, run, image_store=str(split))
    found = store.image(image.id)
    assert found.names == ["wonderful"] and found.big_data_names == ["random1", "random2"]
    assert store.image("wonderful").id == image.id
    assert store.image_big_data(image.id, "random2") == b"two"
    assert [i.id for i in store.images()] == [image.id]
    # ... and it can still be deleted while the split store is in use.
    store.delete_image(image.id)
    store.shutdown()
    assert not open_opts(graph, run).exists(image.id)


def test_transient_store_keeps_plain_layers_in_layers_json(
        open_opts: Callable[..., Store], tmp_path: Path) -> None:
    # bats cleanup-layer in transient mode: the layer must be in <graph>/<driver>-layers.
    store = open_opts(tmp_path / "g", tmp_path / "r", transient_store=True)
    layer = store.create_layer(writeable=True)  # as the CLI's create-layer makes it
    stable = store.graph_root / f"{store.driver_name}-layers" / "layers.json"
    records = json.loads(stable.read_text())
    assert [x["id"] for x in records] == [layer.id]
    records[0]["flags"] = {"incomplete": True}
    stable.write_text(json.dumps(records))
    store.shutdown()
    assert open_opts(tmp_path / "g", tmp_path / "r", transient_store=True).layers() == []


def test_transient_store_over_a_transient_read_only_store_checks_clean(
        open_opts: Callable[..., Store], tmp_path: Path) -> None:
    from cs_core.store.check import CheckOptions

    ro = open_opts(tmp_path / "ro", tmp_path / "ro-run", transient_store=True)
    ro_layer = ro.create_layer()
    ro_image = ro.create_image(layer=ro_layer.id)
    ro.shutdown()

    store = _with_ro_root(open_opts, tmp_path, transient_store=True)
    assert [x.id for x in store.layers()] == [ro_layer.id]
    container = store.create_container(image=ro_image.id)  # bats check-container-ro-image-missing
    assert store.layer(container.layer).parent == ro_layer.id
    unused = store.create_layer()
    report = store.check(CheckOptions(layer_unreferenced_maximum_age=_dt.timedelta(0)))
    assert list(report.layers) == [unused.id] and not report.ro_layers and not report.ro_images
    assert not report.images and not report.containers


def test_read_only_store_is_read_with_its_volatile_layers(
        open_opts: Callable[..., Store], tmp_path: Path) -> None:
    ro = open_opts(tmp_path / "ro", tmp_path / "ro-run")
    container = ro.create_container(image=ro.create_image(layer=ro.create_layer().id).id,
                                    options=ContainerOptions(volatile=True))
    volatile = ro.graph_root / f"{ro.driver_name}-layers" / "volatile-layers.json"
    assert [x["id"] for x in json.loads(volatile.read_text())] == [container.layer]
    ro.shutdown()
    store = _with_ro_root(open_opts, tmp_path)
    assert store.layer(container.layer).read_only


def test_check_finds_a_containers_parent_layer_in_a_read_only_store(
        open_opts: Callable[..., Store], tmp_path: Path) -> None:
    ro = open_opts(tmp_path / "ro", tmp_path / "ro-run")
    image = ro.create_image(layer=ro.create_layer().id)
    ro.shutdown()
    store = _with_ro_root(open_opts, tmp_path)
    store.create_container(image=image.id)
    assert store.check().empty()


def test_split_store_delete_image_keeps_layers_the_other_store_uses(
        open_opts: Callable[..., Store], tmp_path: Path) -> None:
    graph, run, split = tmp_path / "g", tmp_path / "r", tmp_path / "images"
    plain = open_opts(graph, run)
    layer = plain.create_layer()
    old = plain.create_image(names=["old"], layer=layer.id)
    plain.shutdown()
    store = open_opts(graph, run, image_store=str(split))
    new = store.create_image(names=["new"], layer=layer.id)
    assert store.delete_image(new.id) == []  # the graph root's image still uses the layer
    assert store.layer(layer.id).id == layer.id
    assert store.delete_image(old.id) == [layer.id]
    assert store.layers() == []


def test_split_store_keeps_read_only_layers_in_the_image_store(
        open_opts: Callable[..., Store], tmp_path: Path) -> None:
    # split-store.bats: `create-layer --readonly` with --image-store, then the image store
    # opened as a graph root on its own mounts that layer (HEAD's imageStoreLayerLocation).
    graph, run, split = tmp_path / "g", tmp_path / "r", tmp_path / "images"
    store = open_opts(graph, run, image_store=str(split))
    name = store.driver_name
    ro = store.put_layer(diff=io.BytesIO(owned_file_tar(0, 0, "f", b"x")))
    rw = store.create_layer(parent=ro.id, writeable=True)
    in_split = json.loads((split / f"{name}-layers" / "layers.json").read_text())
    in_graph = json.loads((graph / f"{name}-layers" / "layers.json").read_text())
    assert [x["id"] for x in in_split] == [ro.id]
    assert [x["id"] for x in in_graph] == [rw.id]
    # The layer's files and tar-split sit beside its record, so the image store is whole.
    assert (split / f"{name}-layers" / f"{ro.id}.tar-split.gz").exists()
    assert not (graph / f"{name}-layers" / f"{ro.id}.tar-split.gz").exists()
    store.shutdown()

    alone = open_opts(split, tmp_path / "r2")
    assert [x.id for x in alone.layers()] == [ro.id]
    mounted = Path(alone.mount(ro.id))
    try:
        assert (mounted / "f").read_bytes() == b"x"
    finally:
        alone.unmount(ro.id)
    assert owners_in_diff(alone, ro.id, "f") == (0, 0)  # diff reassembled from the tar-split
    alone.shutdown()

    # Both stay usable together, and deleting removes the record and data where they are.
    store = open_opts(graph, run, image_store=str(split))
    assert store.layer(rw.id).parent == ro.id
    store.delete_layer(rw.id)
    store.delete_layer(ro.id)
    assert json.loads((split / f"{name}-layers" / "layers.json").read_text()) == []
    assert not (split / f"{name}-layers" / f"{ro.id}.tar-split.gz").exists()
    assert not any((split / name).rglob(ro.id))
