"""Store.create_container with auto user namespaces, on real stores (vfs and overlay)."""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cs_core.config import StoreOptions
from cs_core.errors import NoAvailableIDs, UserNamespaceTooBig
from cs_core.model import IDMap, Image
from cs_core.store import ContainerOptions, Store, open_store
from cs_core.testing.tars import layer_tar
from cs_core.userns.auto import AutoUserNsOptions

from .conftest import SubIDs

USER = "cs-auto"
AUTO = ContainerOptions(auto_userns=True)


@pytest.fixture
def open_auto(store_roots: tuple[Path, Path], driver_name: str) -> Iterator[Callable[..., Store]]:
    """Open the test's store with auto-userns settings; every handle is shut down after."""
    opened: list[Store] = []

    def make(**settings: Any) -> Store:
        graph, run = store_roots
        store = open_store(StoreOptions(graph_root=str(graph), run_root=str(run),
                                        driver_name=driver_name, root_auto_userns_user=USER,
                                        **settings))
        opened.append(store)
        return store

    yield make
    for store in reversed(opened):
        store.shutdown(force=True)


def make_image(store: Store, passwd: str = "root:x:0:0:::\n", group: str = "root:x:0:\n",
               owned: tuple[int, int] = (5, 6)) -> Image:
    """A base layer with /etc/passwd and /etc/group under a layer with a file owned by
    ``owned``, so sizes come from more than the top layer."""
    base = store.put_layer(diff=io.BytesIO(layer_tar([
        ("etc", None), ("etc/passwd", passwd.encode()), ("etc/group", group.encode())])))
    top = store.put_layer(parent=base.id, diff=io.BytesIO(
        layer_tar([("owned", b"hi")], uid=owned[0], gid=owned[1])))
    return store.create_image(layer=top.id)


def test_consecutive_containers_get_disjoint_ranges_and_own_their_files(
        subids: SubIDs, open_auto: Callable[..., Store]) -> None:
    subids(f"{USER}:100000:5000\n")
    store = open_auto()
    image = make_image(store)
    starts = []
    for _ in range(3):
        container = store.create_container(image=image.id, options=AUTO)
        recorded = store.container(container.id)
        assert recorded.uid_map == recorded.gid_map == container.uid_map
        assert len(container.uid_map) == 1 and container.uid_map[0].size == 1024
        start = container.uid_map[0].host_id
        starts.append(start)
        # The image's file (owned 5:6 inside) is owned through the new map on the host.
        merged = Path(store.mount(container.id))
        try:
            st = os.lstat(merged / "owned")
            assert (st.st_uid, st.st_gid) == (start + 5, start + 6)
            assert os.lstat(merged / "etc" / "passwd").st_uid == start
        finally:
            store.unmount(container.id)
    assert starts == [100000, 101024, 102048]
    # One ID-mapped copy of the top layer per container (none where the driver maps at mount
    # time: overlay with ID-mapped mounts), and no throw-away layer left over.
    copies = 0 if store.can_use_shifting(container.uid_map, container.gid_map) else 3
    assert len(store.image(image.id).mapped_top_layers) == copies
    assert len(store.layers()) == 2 + 3 + copies
    assert all(layer.mount_count == 0 for layer in store.layers())


def test_size_comes_from_passwd_group_and_layer_owners(
        subids: SubIDs, open_auto: Callable[..., Store]) -> None:
    subids(f"{USER}:100000:100000\n")
    store = open_auto()
    high_uid = make_image(store, passwd="root:x:0:0:::\napp:x:5000:100:::\nnobody:x:65534:65534:::\n")
    high_gid = make_image(store, group="root:x:0:\nnogroup:x:65534:\nstaff:x:6000:\n")
    high_owner = make_image(store, owned=(7000, 20))
    sizes = [store.create_container(image=i.id, options=AUTO).uid_map[0].size
             for i in (high_uid, high_gid, high_owner)]
    assert sizes == [5001, 6001, 7001]


def test_min_and_max_size(subids: SubIDs, open_auto: Callable[..., Store]) -> None:
    subids(f"{USER}:100000:100000\n")
    store = open_auto(auto_ns_min_size=3000, auto_ns_max_size=4000)
    small = make_image(store)
    big = make_image(store, passwd="app:x:5000:5000:::\n")
    assert store.create_container(image=small.id, options=AUTO).uid_map[0].size == 3000
    initial = ContainerOptions(auto_userns=True,
                               auto_userns_opts=AutoUserNsOptions(initial_size=3500))
    assert store.create_container(image=small.id, options=initial).uid_map[0].size == 3500
    with pytest.raises(UserNamespaceTooBig) as info:
        store.create_container(image=big.id, options=AUTO)
    assert str(info.value) == ("the container needs a user namespace with size 5001 that is "
                               "bigger than the maximum value allowed with userns=auto 4000")
    # A requested size is taken as it is, whatever the bounds (as Go does).
    exact = ContainerOptions(auto_userns=True, auto_userns_opts=AutoUserNsOptions(size=4500))
    assert store.create_container(image=big.id, options=exact).uid_map[0].size == 4500


def test_running_out_leaves_nothing_behind(subids: SubIDs,
                                           open_auto: Callable[..., Store]) -> None:
    subids(f"{USER}:100000:1500\n")
    store = open_auto()
    image = make_image(store)
    store.create_container(image=image.id, options=AUTO)
    layers = {layer.id for layer in store.layers()}
    with pytest.raises(NoAvailableIDs):
        store.create_container(image=image.id, options=AUTO)
    assert {layer.id for layer in store.layers()} == layers
    assert len(store.containers()) == 1


def test_ranges_of_explicitly_mapped_containers_are_skipped(
        subids: SubIDs, open_auto: Callable[..., Store]) -> None:
    subids(f"{USER}:100000:10000\n")
    store = open_auto()
    explicit = [IDMap(0, 100500, 1000)]
    store.create_container(options=ContainerOptions(uid_map=explicit, gid_map=explicit))
    # No image: the minimum size; the 500 IDs before the explicit range are used first.
    container = store.create_container(options=AUTO)
    assert container.uid_map == [IDMap(0, 100000, 500), IDMap(500, 101500, 524)]


def test_additional_mappings(subids: SubIDs, open_auto: Callable[..., Store]) -> None:
    subids(f"{USER}:100000:10000\n")
    store = open_auto()
    extra = [IDMap(0, 0, 1)]  # the container's root is the host's root
    options = ContainerOptions(auto_userns=True, auto_userns_opts=AutoUserNsOptions(
        size=100, additional_uid_mappings=extra))
    container = store.create_container(options=options)
    assert container.uid_map == [IDMap(1, 100000, 99), IDMap(0, 0, 1)]
    assert container.gid_map == [IDMap(0, 100000, 100)]
