"""The codec's fast paths give exactly what the general (cattrs) hooks give.

Store files are converted by plain-code plans for speed (``codec._fast_structure`` and
``codec._fast_unstructure``) and by the cattrs hooks for anything the plans do not recognise.
These tests hold the two together on awkward records: if a plan ever decodes, re-encodes or
rejects a record differently, a store rewritten by any command would change records nobody
touched.
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Any

import pytest

from cs_core import codec
from cs_core.errors import CorruptRecordFile
from cs_core.model import Container, IDMap, Image, Layer, MountRecord
from cs_core.store import open_store

T0 = "2026-11-27T23:22:03.292589334Z"

LAYERS: list[Any] = [
    # As Go writes them.
    {"id": "go1", "names": ["a", "b"], "parent": "p1", "created": T0,
     "compressed-diff-digest": "sha256:aa", "compressed-size": 157, "diff-digest": "sha256:bb",
     "diff-size": 10240, "compression": 2, "uidset": [0, 1000], "gidset": [0],
     "flags": {"a": "<x>", "incomplete": True},
     "uidmap": [{"container_id": 0, "host_id": 100000, "size": 65536}],
     "gidmap": [{"container_id": 0, "host_id": 100000, "size": 65536}],
     "big-data-names": ["k"]},
    {"id": "go2", "created": "2026-11-27T23:22:03Z"},
    # Fields Go does not know (dropped on rewrite, as Go drops them), keys out of order.
    {"created": T0, "future": {"x": [1, 2]}, "id": "unknown", "names": ["a<b>&c\u2028d"]},
    # Times: trailing zeros, zero offsets spelled out, other offsets, the zero time, micro.
    {"id": "t1", "created": "2026-01-01T00:00:00.000000000Z"},
    {"id": "t2", "created": "2026-01-01T00:00:00.5+00:00"},
    {"id": "t3", "created": "2026-06-30T23:59:59.123456789-07:30"},
    {"id": "t4", "created": "0001-01-01T00:00:00Z"},
    {"id": "t5", "created": "2026-01-01T00:00:00.100Z"},
    {"id": "t6", "created": "2026-02-03T04:05:06.000001-00:00"},
    {"id": "t7", "created": "2026-02-03T04:05:06.123456+14:00"},
    # Numbers Go writes as floats, values spelled null, empty values written out.
    {"id": "n1", "created": T0, "diff-size": 10240.0, "compressed-size": -1, "gidset": [0.0]},
    {"id": "n2", "created": T0, "parent": None, "names": None, "flags": None},
    {"id": "n3", "created": T0, "parent": "", "names": [], "flags": {}, "uidset": [],
     "compression": 0, "metadata": ""},
    # Flags nested and unsorted, with every JSON type.
    {"id": "f1", "created": T0,
     "flags": {"z": {"b": 1, "a": [{"d": 1, "c": 2}, "s"]}, "a": True, "n": None, "f": 1.5}},
    # An ID map entry with a key of its own and its keys out of order.
    {"id": "m1", "created": T0,
     "uidmap": [{"size": 1, "host_id": 2, "container_id": 0, "extra": 5}]},
]

IMAGES: list[Any] = [
    {"id": "i1", "digest": "sha256:" + "a" * 64, "names": ["x/y:<1>"], "names-history": ["h"],
     "layer": "l1", "mapped-layers": ["l2"], "metadata": "{}",
     "big-data-names": ["manifest", "b"], "big-data-sizes": {"manifest": 3, "b": 1},
     "big-data-digests": {"manifest": "sha256:" + "b" * 64, "b": ""}, "created": T0,
     "flags": {"y": 1, "x": 2}},
    {"id": "i2", "big-data-sizes": {"z": 1.0}, "created": T0},
]

CONTAINERS: list[Any] = [
    {"id": "c1", "names": ["c"], "image": "i1", "layer": "l1", "metadata": "m",
     "big-data-names": ["k"], "big-data-sizes": {"k": 1}, "big-data-digests": {"k": "d"},
     "created": T0, "uidmap": [{"container_id": 0, "host_id": 1, "size": 2}],
     "gidmap": [], "flags": {"MountLabel": "", "ProcessLabel": "p"}},
    {"id": "c2", "created": T0},  # image and layer missing: always written, empty
]

MOUNTS: list[Any] = [
    {"id": "l1", "path": "/var/lib/containers/storage/overlay/l1/merged", "count": 2},
    {"id": "l2", "path": "", "count": 0},
    {"count": 1, "id": "l3", "extra": [1]},  # path missing, keys out of order, an unknown key
    {"id": "l4", "path": None, "count": 1.0},
]

BROKEN: list[tuple[type[Any], Any]] = [
    (Layer, {"id": 5, "created": T0}),
    (Layer, {"id": "x", "names": "x", "created": T0}),
    (Layer, {"id": "x", "names": ["a", 1], "created": T0}),
    (Layer, {"id": "x", "created": "2026-13-01T00:00:00Z"}),
    (Layer, {"id": "x", "created": "2026-01-01T25:00:00Z"}),
    (Layer, {"id": "x", "created": "2026-01-01T00:00:00+99:00"}),
    (Layer, {"id": "x", "created": "10000-01-01T00:00:00Z"}),
    (Layer, {"id": "x", "created": 5}),
    (Layer, {"id": "x", "created": T0, "uidmap": [{"container_id": 0}]}),
    (Layer, {"id": "x", "created": T0, "uidmap": {"container_id": 0}}),
    (Layer, {"id": "x", "created": T0, "compressed-size": True}),
    (Layer, {"id": "x", "created": T0, "compressed-size": 1.5}),
    (Layer, {"id": "x", "created": T0, "flags": []}),
    (Layer, 1),
    (Image, {"id": "x", "created": T0, "big-data-sizes": {"a": "x"}}),
    (Image, {"id": "x", "created": T0, "big-data-digests": {"a": 1}}),
    (Container, {"id": "x", "created": T0, "image": ["i"]}),
    (MountRecord, {"id": "x", "path": "/p", "count": "1"}),
    (MountRecord, {"id": "x", "path": 5, "count": 1}),
    (MountRecord, {"id": ["x"], "count": 1}),
]


def _general_loads(data: bytes, cls: type[Any]) -> list[Any]:
    conv = codec.get_converter()
    return [conv.structure(item, cls) for item in json.loads(data)]


def _general_dumps(records: list[Any]) -> bytes:
    conv = codec.get_converter()
    return codec.go_json_dumps([conv.unstructure(r) for r in records]).encode()


@pytest.mark.parametrize(("cls", "raw"), [(Layer, LAYERS), (Image, IMAGES),
                                          (Container, CONTAINERS), (MountRecord, MOUNTS)])
def test_loads_and_dumps_match_the_general_hooks(cls: type[Any], raw: list[Any]) -> None:
    data = json.dumps(raw).encode()
    fast = codec.loads_records(data, cls, "f.json")
    general = _general_loads(data, cls)
    assert fast == general
    for a, b in zip(fast, general, strict=True) if cls is not MountRecord else ():
        # Equal datetimes can still differ in what they print (offset, nanoseconds).
        assert codec.format_time(a.created) == codec.format_time(b.created)
    assert codec.dumps_records(fast) == _general_dumps(general)


def test_records_as_go_writes_them_round_trip_byte_identical() -> None:
    data = _general_dumps(_general_loads(json.dumps(LAYERS).encode(), Layer))
    assert codec.dumps_records(codec.loads_records(data, Layer, "f.json")) == data


def test_duplicate_keys_decode_as_the_general_hooks_do() -> None:
    data = b'[{"id":"a","created":"%s","id":"b","names":["x"],"names":["y"]}]' % T0.encode()
    assert codec.loads_records(data, Layer, "f.json") == _general_loads(data, Layer)


@pytest.mark.parametrize(("cls", "record"), BROKEN)
def test_damaged_records_fail_with_the_general_hooks_message(cls: type[Any], record: Any) -> None:
    import cattrs

    data = json.dumps([record]).encode()
    with pytest.raises(CorruptRecordFile) as fast:
        codec.loads_records(data, cls, "f.json")
    try:
        _general_loads(data, cls)
    except (ValueError, TypeError, KeyError, cattrs.BaseValidationError) as exc:
        assert str(fast.value) == str(CorruptRecordFile.in_file(
            "f.json", f"loading f.json: {codec._describe(exc)}"))
    else:
        pytest.fail("the general hooks accepted the record")


def test_values_set_in_code_encode_as_the_general_hooks_do() -> None:
    odd_time = codec.parse_time("2026-01-02T03:04:05.123456789+02:00")
    records: list[Any] = [
        Layer(id="a", created=_dt.datetime(2026, 1, 2, 3, 4, 5)),  # naive: taken as UTC
        Layer(id="b", created=odd_time, names=("t1", "t2"), flags={"t": (1, 2)}),  # type: ignore[arg-type]
        Layer(id="c", created=odd_time, uid_map=(IDMap(0, 1, 2),), flags={1: "int key"}),  # type: ignore[arg-type]
        Layer(id="d", created=odd_time, flags={"when": odd_time, "x": {"b": 1, "a": 2}}),
        Layer(id="e", created=odd_time, uidset=[1, 2], compressed_size=-1, metadata="<&>"),
        Image(id="i", created=odd_time, big_data_sizes={"b": 2, "a": 1},
              big_data_digests={"b": "y", "a": "x"}, names_history=["n"]),
        Container(id="c", created=odd_time, gid_map=[IDMap(1, 2, 3)], flags={"b": [], "a": {}}),
    ]
    for record in records:
        assert codec.dumps_records([record]) == _general_dumps([record]), record


def test_untouched_records_survive_a_create_in_a_big_store(tmp_path: Path) -> None:
    graph, run = tmp_path / "graph", tmp_path / "run"
    layers_json = graph / "vfs-layers" / "layers.json"
    layers_json.parent.mkdir(parents=True)
    plain = [{"id": f"{i:064x}", "created": f"2026-01-01T00:00:00.{i + 1:09d}".rstrip("0") + "Z"}
             for i in range(2000)]
    odd = [r for r in LAYERS if r["id"] != "go1"]  # go1 is incomplete: it would be deleted
    seeded = json.dumps([*odd, *plain]).encode()
    layers_json.write_bytes(seeded)
    store = open_store(graph_root=str(graph), run_root=str(run), driver_name="vfs")
    try:
        created = store.create_layer(names=["new<&>"])
    finally:
        store.shutdown(force=True)
    written = layers_json.read_bytes()
    # Everything that was there is rewritten exactly as the general hooks rewrite it ...
    before = _general_dumps(_general_loads(seeded, Layer))
    assert written.startswith(before[:-1] + b",")
    # ... which for records as Go writes them is their bytes unchanged, and the new record
    # is the one the store holds.
    assert codec.go_json_dumps(plain).encode()[1:-1] in written
    new = json.loads(written)[-1]
    assert new["id"] == created.id and new["names"] == ["new<&>"]
    assert b'"names":["new\\u003c\\u0026\\u003e"]' in written


@pytest.mark.parametrize("text", sorted({r["created"] for r in LAYERS}))
def test_a_kept_time_text_is_what_formatting_writes(text: str) -> None:
    value = codec.parse_time(text)
    # The same instant and nanoseconds, without the text kept from parsing.
    bare = codec.GoTime.wrap(value.replace(), getattr(value, "extra_nanos", 0))
    assert getattr(bare, "text", None) is None
    assert codec.format_time(value) == codec.format_time(bare)
