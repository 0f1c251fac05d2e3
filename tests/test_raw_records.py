"""Record files used raw (cs_core/records/rawfile.py): per-command work independent of the
store's size, and files byte-identical to what decoding and re-encoding them all writes."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cs_core import codec
from cs_core.model import Container, Image, Layer
from cs_core.records.images import ImageStore
from cs_core.records.rawfile import Proofs
from cs_core.store import Store, open_store
from cs_core.testing.gocli import GoCLI

SIZE = 10_000
CREATED = "2026-01-01T00:00:00.123456789Z"


def _hex(index: int, tag: str) -> str:
    return f"{tag}{index:063x}"[:64].replace("z", "f")


def _seed(graph: Path, count: int) -> tuple[str, str]:
    """A vfs store of ``count`` layers and as many containers, written as Go writes them."""
    layers = [{"id": _hex(i, "a"), "created": CREATED} for i in range(count)]
    containers = [
        {"id": _hex(i, "c"), "names": [f"ctr{i}"], "image": "", "layer": _hex(i, "b"),
         "created": CREATED, "flags": {"MountLabel": "", "ProcessLabel": ""}}
        for i in range(count)
    ]
    for kind, records in (("layers", layers), ("containers", containers)):
        directory = graph / f"vfs-{kind}"
        directory.mkdir(parents=True)
        (directory / f"{kind}.json").write_text(json.dumps(records, separators=(",", ":")))
    parent = _hex(count // 2, "a")
    (graph / "vfs" / "dir" / parent).mkdir(parents=True)
    return parent, _hex(count // 3, "c")


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """How many records of each kind get built (decoded or made) from now on."""
    counts = {"Layer": 0, "Container": 0, "Image": 0}
    for cls in (Layer, Container, Image):
        original = cls.__init__

        def counting(self: Any, *args: Any, __original: Any = original,
                     __name: str = cls.__name__, **kwargs: Any) -> None:
            counts[__name] += 1
            __original(self, *args, **kwargs)

        monkeypatch.setattr(cls, "__init__", counting)
    return counts


@pytest.fixture
def big_store(tmp_path: Path) -> Iterator[tuple[Callable[[], Store], str, str]]:
    graph, run = tmp_path / "graph", tmp_path / "run"
    parent, container = _seed(graph, SIZE)
    opened: list[Store] = []

    def make() -> Store:
        store = open_store(graph_root=str(graph), run_root=str(run), driver_name="vfs")
        opened.append(store)
        return store

    first = make()  # the first use decodes everything once, and proves the files canonical
    first.layers()
    first.containers()
    yield make, parent, container
    for store in reversed(opened):
        store.shutdown(force=True)


def _full_encoding(path: Path, cls: type[Any]) -> bytes:
    return codec.dumps_records(codec.loads_records(path.read_bytes(), cls, str(path)))


def test_create_layer_decodes_only_what_it_touches(
    big_store: tuple[Callable[[], Store], str, str], counted: dict[str, int], tmp_path: Path,
) -> None:
    make, parent, _container = big_store
    store = make()
    created = store.create_layer(parent=parent, names=["fresh"])
    # The parent, the new layer and its copies: not the 10,000 layers or containers.
    assert counted["Layer"] < 10, counted
    assert counted["Container"] == 0, counted
    layers_json = tmp_path / "graph" / "vfs-layers" / "layers.json"
    assert layers_json.read_bytes() == _full_encoding(layers_json, Layer)
    records = json.loads(layers_json.read_bytes())
    assert len(records) == SIZE + 1
    assert records[-1]["id"] == created.id and records[-1]["names"] == ["fresh"]
    assert "incomplete" not in records[-1].get("flags", {})
    # Every untouched record is kept, in order and as it was.
    assert [r["id"] for r in records[:-1]] == [_hex(i, "a") for i in range(SIZE)]


def test_container_lookups_decode_only_candidates(
    big_store: tuple[Callable[[], Store], str, str], counted: dict[str, int],
) -> None:
    make, _parent, container = big_store
    store = make()
    assert store.container(container).id == container
    assert store.container(f"ctr{SIZE // 3}").id == container
    assert store.container(_hex(SIZE // 3, "b")).id == container  # by its layer
    assert not store.exists(container[:63])  # a prefix sixteen IDs share
    assert not store.exists("ctr-none")
    assert counted["Container"] < 20, counted


def _operations(make: Callable[[], ImageStore]) -> list[object]:
    """A sequence of writes and lookups, each step by a fresh handle (as each CLI process);
    what it returns and the file it leaves must not depend on whether the store works raw."""
    seen: list[object] = []
    raw: list[bool] = []

    def image(id: str, *names: str) -> Image:
        return Image(id=id, names=list(names), top_layer=f"layer-{id}",
                     created=codec.parse_time(CREATED))

    store = make()
    with store.writing():
        for i in range(50):
            store.add(image(f"{i:02d}ab", f"name{i}"))
        store.save()
    store = make()
    with store.writing():
        raw.append(store._raw is not None)
        store.update_names(store.get("name3"), ["name4", "extra"], "add")  # moves name4
        store.remove(store.get("10ab"))
        store.add(image("99zz", "name10"))
        store.get("20ab").metadata = "changed <&>"
        store.remove(store.get("30ab"))
        store.add(image("30ab", "again"))  # removed and added back: moves to the end
        store.save()
    store = make()
    with store.reading():
        raw.append(store._raw is not None)
        for ref in ("name4", "name3", "extra", "10ab", "name10", "4", "20", "2", "99", "03ab",
                    "again", "name30"):
            found = store.lookup(ref)
            seen.append((ref, found.id if found else None, list(found.names) if found else None))
        seen.append([i.id for i in store.by_top_layer("layer-20ab")])
        seen.append(store.get("20ab").metadata)
    store = make()
    with store.writing():
        raw.append(store._raw is not None)
        store.remove(store.get("49ab"))  # the last record
        store.remove(store.get("00ab"))  # the first
        store.save()
    seen.append(raw)
    return seen


def test_raw_and_decoded_stores_agree(tmp_path: Path) -> None:
    def raw() -> ImageStore:
        store = ImageStore(tmp_path / "raw")
        store.proofs = Proofs(tmp_path / "proofs")
        return store

    raw_seen = _operations(raw)
    plain_seen = _operations(lambda: ImageStore(tmp_path / "plain"))
    assert raw_seen[-1] == [True, True, True]  # every later step worked raw
    assert plain_seen[-1] == [False, False, False]
    assert raw_seen[:-1] == plain_seen[:-1]
    plain_file = (tmp_path / "plain" / "images.json").read_bytes()
    assert (tmp_path / "raw" / "images.json").read_bytes() == plain_file


def test_a_foreign_edit_is_never_served_from_the_proof(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "images")
    store.proofs = Proofs(tmp_path / "proofs")
    with store.writing():
        store.add(Image(id="aaaa", names=["one"]))
        store.save()
    path = store.files[0].path
    records = json.loads(path.read_bytes())
    records.append({"id": "bbbb", "names": ["two"], "created": CREATED})
    path.write_text(json.dumps(records, indent=1))  # a hand edit: not our spelling
    fresh = ImageStore(tmp_path / "images")
    fresh.proofs = Proofs(tmp_path / "proofs")
    with fresh.writing():
        assert fresh._raw is None  # the proof named other bytes
        assert fresh.get("two").id == "bbbb"
        fresh.save()
    assert path.read_bytes() == _full_encoding(path, Image)


def test_go_reads_and_writes_beside_raw_records(tmp_path: Path) -> None:
    graph, run = tmp_path / "graph", tmp_path / "run"
    go = GoCLI(graph, run, "vfs")
    go.run("create-layer", "--name", "go-first")
    store = open_store(graph_root=str(graph), run_root=str(run), driver_name="vfs")
    try:
        store.layers()  # proves Go's file canonical
        ours = []
        for i in range(3):
            handle = open_store(graph_root=str(graph), run_root=str(run), driver_name="vfs")
            ours.append(handle.create_layer(names=[f"ours{i}"]).id)
            assert handle.layer_store._raw is not None  # worked raw
            handle.free()
        listed = go.json("layers")
        assert [layer["id"] for layer in listed][-3:] == ours
        go.run("create-layer", "--name", "go-second", ours[1])
        reopened = open_store(graph_root=str(graph), run_root=str(run), driver_name="vfs")
        try:
            assert reopened.layer("go-second").parent == ours[1]
            reopened.delete_layer("go-second")
            reopened.set_names(ours[0], ["renamed"])
        finally:
            reopened.shutdown(force=True)
        names = {tuple(layer.get("names", [])) for layer in go.json("layers")}
        assert ("renamed",) in names and ("go-second",) not in names
    finally:
        store.shutdown(force=True)
