"""Corrupt and hand-edited bookkeeping: clear errors naming the file, or Go's tolerance.

Whatever is wrong, a store operation must never answer by rewriting the damaged file with
what little it understood: every test checks that the file's bytes survive a failed write.
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cs_core.errors import CorruptRecordFile
from cs_core.store import Store, open_store
from cs_core.store.check import CheckOptions


def layer_tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for i in range(3):
            data = bytes([i]) * 5000
            info = tarfile.TarInfo(f"f{i}")
            info.size, info.mtime = len(data), 1_700_000_000
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture
def populated(make_store: Callable[[], Store]) -> Iterator[Store]:
    store = make_store()
    a = store.put_layer(names=["a"], diff=io.BytesIO(layer_tar()))
    store.create_layer(names=["b"], parent=a.id)
    image = store.create_image(names=["img"], layer=a.id)
    store.create_container(names=["ctr"], image=image.id)
    saved = {p: p.read_bytes() for p in (layers_json(store), images_json(store))}
    yield store
    for path, data in saved.items():  # so that teardown can shut the store down
        if path.read_bytes() != data:
            path.write_bytes(data)


def reopen(store: Store) -> Store:
    return open_store(graph_root=str(store.graph_root), run_root=str(store.run_root),
                      driver_name=store.driver_name)


def layers_json(store: Store) -> Path:
    return store.graph_root / f"{store.driver_name}-layers" / "layers.json"


def images_json(store: Store) -> Path:
    return store.graph_root / f"{store.driver_name}-images" / "images.json"


def expect_corrupt(path: Path, call: Callable[[], object], *words: str) -> None:
    before = path.read_bytes()
    with pytest.raises(CorruptRecordFile) as exc_info:
        call()
    message = str(exc_info.value)
    assert str(path) in message and "\n" not in message
    for word in words:
        assert word in message
    assert path.read_bytes() == before, "a failed operation rewrote the damaged file"


def test_truncated_layers_json(populated: Store) -> None:
    path = layers_json(populated)
    good = path.read_bytes()
    path.write_bytes(good[: len(good) // 2])
    expect_corrupt(path, lambda: reopen(populated))
    expect_corrupt(path, lambda: populated.create_layer(names=["c"]))
    expect_corrupt(path, populated.layers)
    # Putting the file back brings everything back: nothing was lost meanwhile.
    path.write_bytes(good)
    store = reopen(populated)
    assert sorted(n for x in store.layers() for n in x.names) == ["a", "b"]
    assert store.check(CheckOptions.everything()).empty()


def test_garbage_images_json(populated: Store) -> None:
    path = images_json(populated)
    good = path.read_bytes()
    path.write_bytes(b"\x00\xffnot json at all")
    expect_corrupt(path, populated.images)
    expect_corrupt(path, lambda: populated.create_image(names=["other"]))
    expect_corrupt(path, lambda: populated.set_names("img", ["renamed"]))
    path.write_bytes(b'{"id": "x"}')  # valid JSON, wrong shape
    expect_corrupt(path, populated.images, "expected a JSON array")
    path.write_bytes(good)
    assert [i.names for i in reopen(populated).images()] == [["img"]]


@pytest.mark.parametrize(("field", "value", "words"), [
    ("names", "a", ('field "names"', "expected list")),
    ("created", 5, ('field "created"',)),
    ("diff-size", "big", ('field "diff-size"',)),
    ("flags", [], ('field "flags"',)),
])
def test_wrong_type_field(populated: Store, field: str, value: object,
                          words: tuple[str, ...]) -> None:
    path = layers_json(populated)
    records = json.loads(path.read_bytes())
    records[0][field] = value
    path.write_text(json.dumps(records))
    expect_corrupt(path, lambda: reopen(populated), *words)
    expect_corrupt(path, lambda: populated.create_layer())


def test_empty_file_is_an_empty_store_like_go(populated: Store) -> None:
    # Go's loader accepts a zero-length file as "no records" (it is what a crash of a
    # non-atomic writer leaves); we match it. A file with content is never treated so.
    path = images_json(populated)
    path.write_bytes(b"")
    assert reopen(populated).images() == []


def test_duplicate_names_keep_the_later_record_like_go(populated: Store) -> None:
    path = layers_json(populated)
    records = json.loads(path.read_bytes())
    by_name = {r["names"][0]: r for r in records if r.get("names")}
    by_name["b"]["names"] = ["b", "a"]  # a hand edit gives "a" to a second layer
    path.write_text(json.dumps(records))
    store = reopen(populated)  # write-access load resolves and saves, as Go does
    assert store.layer("a").id == by_name["b"]["id"]
    assert store.layer(by_name["a"]["id"]).names == []
    saved = json.loads(path.read_bytes())
    assert len(saved) == len(records)  # no record lost on the way
    assert sorted(n for r in saved for n in r.get("names", [])) == ["a", "b"]


def test_missing_lock_files_are_recreated(populated: Store) -> None:
    graph, driver = populated.graph_root, populated.driver_name
    locks = [graph / "storage.lock", graph / f"{driver}-layers" / "layers.lock",
             graph / f"{driver}-images" / "images.lock",
             graph / f"{driver}-containers" / "containers.lock"]
    for lock in locks:
        lock.unlink()
    from cs_core import lockfile

    # A new process would not have cached the old lock objects; neither may we.
    lockfile._registry.clear()
    store = reopen(populated)
    assert sorted(n for x in store.layers() for n in x.names) == ["a", "b"]
    assert [c.names for c in store.containers()] == [["ctr"]]
    store.create_layer(names=["c"])
    assert all(lock.exists() for lock in locks)
    assert store.check(CheckOptions.everything()).empty()


def test_truncated_tar_split_is_reported_and_repaired(populated: Store) -> None:
    layer = populated.layer("a")
    ts = populated.layer_store.tar_split_path(layer.id)
    ts.write_bytes(gzip.compress(gzip.decompress(ts.read_bytes())[:200]))
    report = populated.check(CheckOptions.most())
    assert layer.id in report.layers
    assert all(str(e).startswith(f"layer {layer.id}: ") for e in report.layers[layer.id])
    # The image built on it and the container built on that image inherit the damage.
    assert report.images and report.containers
    from cs_core.store.check import RepairOptions

    # As in Go, a damaged layer that still has a (healthy) child is not removed: repair says
    # so, and removing the child lets the next repair finish.
    failures = populated.repair(report, RepairOptions(remove_containers=True))
    assert [str(f) for f in failures] == [
        f"deleting layer {layer.id}: used by layer {populated.layer('b').id}: layer has children"
    ]
    populated.delete_layer("b")
    report = populated.check(CheckOptions.everything())
    assert list(report.layers) == [layer.id]
    assert populated.repair(report) == []
    assert populated.check(CheckOptions.everything()).empty()


def test_cli_reports_a_corrupt_file_on_one_line(populated: Store,
                                                capfd: pytest.CaptureFixture[str]) -> None:
    from cs_core.cli import main as cli_main

    path = layers_json(populated)
    path.write_bytes(b"[{")
    capfd.readouterr()
    code = cli_main.run(["-g", str(populated.graph_root), "-R", str(populated.run_root),
                         "-s", populated.driver_name, "layers"])
    out, err = capfd.readouterr()
    assert code == 1
    text = (out + err).strip()
    assert text.count("\n") == 0 and str(path) in text and "Traceback" not in text
    assert path.read_bytes() == b"[{"
