"""The JSON codec writes exactly what Go writes and reads what Go wrote."""

from __future__ import annotations

import json

import pytest

from cs_core import codec
from cs_core.errors import CorruptRecordFile
from cs_core.model import Container, IDMap, Image, Layer, MountRecord

GO_LAYER = (
    b'[{"id":"9d5c","names":["a","b"],"parent":"p1","created":"2026-11-27T23:22:03.292589334Z",'
    b'"compressed-diff-digest":"sha256:aa","compressed-size":157,"diff-digest":"sha256:bb",'
    b'"diff-size":10240,"compression":2,"uidset":[0,1000],"gidset":[0],'
    b'"flags":{"a":"\\u003cx\\u003e","incomplete":true},'
    b'"uidmap":[{"container_id":0,"host_id":100000,"size":65536}]}]'
)


def test_layer_round_trip_is_byte_identical() -> None:
    layers = codec.loads_records(GO_LAYER, Layer, "layers.json")
    assert layers[0].created.microsecond == 292589
    assert layers[0].uid_map == [IDMap(0, 100000, 65536)]
    assert codec.dumps_records(layers) == GO_LAYER


def test_omitempty_and_always_written_fields() -> None:
    created = codec.parse_time("2026-01-02T03:04:05Z")
    assert codec.dumps_records([Layer(id="x", created=created)]) == (
        b'[{"id":"x","created":"2026-01-02T03:04:05Z"}]'
    )
    # Containers always carry image and layer, even empty (Go has no omitempty there).
    assert codec.dumps_records([Container(id="c", created=created)]) == (
        b'[{"id":"c","image":"","layer":"","created":"2026-01-02T03:04:05Z"}]'
    )
    # diff-size of -1 (size unknown) is not "empty" and must be written.
    assert b'"diff-size":-1' in codec.dumps_records([Layer(id="x", uncompressed_size=-1)])


def test_image_maps_are_sorted_and_html_escaped() -> None:
    image = Image(
        id="i", names=["<n>&"], big_data_sizes={"z": 1, "a": 2},
        big_data_digests={"z": "sha256:1", "a": "sha256:2"},
        created=codec.parse_time("2026-01-02T03:04:05.1Z"),
    )
    text = codec.dumps_records([image]).decode()
    assert '"names":["\\u003cn\\u003e\\u0026"]' in text
    assert '"big-data-sizes":{"a":2,"z":1}' in text
    assert '"created":"2026-01-02T03:04:05.1Z"' in text
    assert json.loads(text)[0]["names"] == ["<n>&"]


def test_times_keep_nanoseconds_and_offsets() -> None:
    for text in ("2026-11-27T23:22:03.292589334Z", "2026-11-27T23:22:03Z",
                 "2026-11-27T23:22:03.5+01:00", "0001-01-01T00:00:00Z"):
        assert codec.format_time(codec.parse_time(text)) == text


def test_mountpoints_file_shape() -> None:
    assert codec.dumps_records([MountRecord("abc", "/m", 2)]) == (
        b'[{"id":"abc","path":"/m","count":2}]'
    )
    assert codec.dumps_records([]) == b"[]"


@pytest.mark.parametrize(
    "data, fragment",
    [
        (b'[{"id":"x"', "layers.json"),
        (b'{"id":"x"}', "expected a JSON array"),
        (b'[{"id":5}]', "expected str"),
        (b'[{"id":"x","diff-size":"big"}]', "expected an integer"),
        (b'[{"id":"x","created":"yesterday"}]', "invalid time"),
    ],
)
def test_corrupt_files_name_the_file(data: bytes, fragment: str) -> None:
    with pytest.raises(CorruptRecordFile) as info:
        codec.loads_records(data, Layer, "/store/vfs-layers/layers.json")
    assert "/store/vfs-layers/layers.json" in str(info.value)
    assert fragment in str(info.value)


def test_empty_file_is_empty_store() -> None:
    assert codec.loads_records(b"", Layer, "x") == []
    assert codec.loads_records(b"[]", Layer, "x") == []
