"""Record stores: lookups, names, big data, digests, reloads and duplicate handling."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cs_core.errors import CorruptRecordFile, DuplicateID, DuplicateImageNames, InvalidBigDataName
from cs_core.model import Image
from cs_core.records.base import generate_id
from cs_core.records.bigdata import big_data_file_name
from cs_core.records.images import ImageStore


def _image(id: str, *names: str) -> Image:
    return Image(id=id, names=list(names))


def test_big_data_file_names_match_go() -> None:
    assert big_data_file_name("manifest") == "manifest"
    assert big_data_file_name("sha256:abc") == "=c2hhMjU2OmFiYw=="
    assert big_data_file_name("Weird Key/1") == "=V2VpcmQgS2V5LzE="
    with pytest.raises(InvalidBigDataName):
        big_data_file_name("")


def test_generated_ids() -> None:
    ids = {generate_id() for _ in range(200)}
    assert len(ids) == 200
    for i in ids:
        assert len(i) == 64 and all(c in "0123456789abcdef" for c in i)
        assert not i[:12].isdigit()


def test_lookup_by_id_name_and_unique_prefix(tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    with store.writing():
        store.add(_image("abc111", "one"))
        store.add(_image("abc222", "two"))
        store.add(_image("def333"))
        store.save()
    with store.reading():
        assert store.get("one").id == "abc111"
        assert store.get("abc2").id == "abc222"
        assert store.get("d").id == "def333"
        assert store.lookup("abc") is None  # ambiguous
        assert store.lookup("zzz") is None
        with pytest.raises(DuplicateID):
            store.new_id("abc111")


def test_assigning_a_taken_name_moves_it(tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    with store.writing():
        a, b = _image("a", "shared", "x"), _image("b")
        store.add(a)
        store.add(b)
        store.update_names(b, ["shared"], "add")
        store.save()
    fresh = ImageStore(tmp_path)
    with fresh.reading():
        assert fresh.get("shared").id == "b"
        assert fresh.get("a").names == ["x"]


def test_reload_when_another_process_writes(tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    with store.writing():
        store.add(_image("first"))
        store.save()
    code = textwrap.dedent(f"""
        from pathlib import Path
        from cs_core.model import Image
        from cs_core.records.images import ImageStore
        s = ImageStore(Path({str(tmp_path)!r}))
        with s.writing():
            s.add(Image(id="second", names=["from-elsewhere"]))
            s.save()
    """)
    subprocess.run([sys.executable, "-c", code], check=True)
    with store.reading():
        assert store.get("from-elsewhere").id == "second"


def test_image_digests_from_manifest_items(tmp_path: Path) -> None:
    from cs_core.records.images import recompute_digests

    d1 = "sha256:" + "1" * 64
    d2 = "sha256:" + "2" * 64
    image = Image(id="i", big_data_names=["manifest", "config", "manifest-sha256:x"],
                  big_data_digests={"manifest": d1, "config": "sha256:" + "9" * 64,
                                    "manifest-sha256:x": d2})
    assert recompute_digests(image)
    assert image.digest == d1
    assert image.digests == [d1, d2]


def test_corrupt_file_is_reported_and_left_alone(tmp_path: Path) -> None:
    (tmp_path / "images.json").write_bytes(b'[{"id":"a"},')
    store = ImageStore(tmp_path)
    with pytest.raises(CorruptRecordFile, match=r"images\.json"):
        with store.writing():
            pass
    assert (tmp_path / "images.json").read_bytes() == b'[{"id":"a"},'


def test_duplicate_names_resolved_on_write_load_refused_read_only(tmp_path: Path) -> None:
    (tmp_path / "images.json").write_bytes(
        b'[{"id":"a","names":["n"],"created":"2026-01-01T00:00:00Z"},'
        b'{"id":"b","names":["n"],"created":"2026-01-01T00:00:00Z"}]'
    )
    ro = ImageStore(tmp_path, read_only=True)
    with pytest.raises(DuplicateImageNames):
        with ro.reading():
            pass
    rw = ImageStore(tmp_path)
    with rw.writing():
        assert rw.get("n").id == "b"  # Go keeps the name on the later record
    assert b'"id":"a","created"' in (tmp_path / "images.json").read_bytes()
