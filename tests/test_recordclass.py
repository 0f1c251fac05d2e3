"""The record classes keep attrs' semantics without importing attrs (cs_core.recordclass).

Checked on the real model and driver-option classes the store and plugins use.
"""

from __future__ import annotations

import copy
import datetime as _dt
import pickle
import subprocess
import sys

import pytest

from cs_core import recordclass
from cs_core.drivers.base import ApplyDiffOpts, DriverConfig
from cs_core.model import IDMap, Layer


def test_a_mutable_record_takes_its_fields_in_order_with_fresh_factories() -> None:
    a, b = Layer("a"), Layer("b", ["name"], "a")
    a.names.append("x")
    assert (b.id, b.names, b.parent, Layer("c").names) == ("b", ["name"], "a", [])
    assert a == Layer("a", ["x"], created=a.created) and a != b
    with pytest.raises(TypeError, match="unhashable"):
        hash(a)
    with pytest.raises(AttributeError):
        a.no_such_field = 1  # type: ignore[attr-defined]  # slotted
    assert repr(IDMap(0, 1000, 1)) == "IDMap(container_id=0, host_id=1000, size=1)"


def test_a_frozen_record_is_immutable_and_hashable() -> None:
    m = IDMap(0, 1000, 65536)
    with pytest.raises(AttributeError):
        m.size = 1  # type: ignore[misc]
    with pytest.raises(recordclass.FrozenInstanceError):
        del m.size  # type: ignore[misc]
    assert hash(m) == hash(IDMap(0, 1000, 65536)) and {m, IDMap(0, 1000, 65536)} == {m}


def test_evolve_copies_with_changes_and_pickle_and_copy_round_trip() -> None:
    layer = Layer("a", ["n"], created=_dt.datetime(2020, 1, 1, tzinfo=_dt.UTC))
    moved = recordclass.evolve(layer, parent="p")
    assert (moved.parent, moved.names, moved.created) == ("p", ["n"], layer.created)
    assert moved.names is layer.names  # a shallow copy, as attrs.evolve
    m = IDMap(1, 2, 3)
    assert pickle.loads(pickle.dumps(m)) == m and copy.deepcopy(layer) == layer
    assert copy.copy(m) == m


def test_fields_carry_metadata_and_resolved_types() -> None:
    recordclass.resolve_types(Layer)
    by_name = {f.name: f for f in recordclass.fields(Layer)}
    assert by_name["compressed_digest"].metadata["cs_json"] == ("compressed-diff-digest", True, True)
    assert by_name["uid_map"].type == list[IDMap]
    assert [f.name for f in recordclass.fields(IDMap)] == ["container_id", "host_id", "size"]


def test_attrs_and_cattrs_still_accept_the_classes() -> None:
    """Plugins and callers that use attrs' functions on the records keep working."""
    import attrs
    import cattrs

    opts = ApplyDiffOpts()
    assert attrs.has(ApplyDiffOpts)
    assert attrs.evolve(opts, ignore_chown_errors=True).ignore_chown_errors  # type: ignore[misc]
    assert attrs.fields(Layer).names.name == "names"  # type: ignore[arg-type]
    as_dict = attrs.asdict(IDMap(0, 1, 2))  # type: ignore[arg-type]
    assert as_dict == {"container_id": 0, "host_id": 1, "size": 2}
    conf = cattrs.structure({"container_id": 5, "host_id": 6, "size": 7}, IDMap)
    assert conf == IDMap(5, 6, 7)
    assert isinstance(recordclass.evolve(DriverConfig(*["/x"] * 4)), DriverConfig)  # type: ignore[arg-type]


def test_a_mandatory_field_after_a_default_is_refused() -> None:
    with pytest.raises(ValueError, match="no mandatory field 'b' after a defaulted one"):
        @recordclass.define
        class Bad:
            a: int = 0
            b: int  # type: ignore[misc]


def test_importing_the_model_and_options_does_not_import_attrs() -> None:
    code = ("import sys, cs_core.model, cs_core.config, cs_core.drivers.base, cs_core.store;"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('attr', 'attrs')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
