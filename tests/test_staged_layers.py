"""Staged layers on drivers without the capability: Go's ErrNotSupported, nothing left behind."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from cs_core.drivers.staging import TarDiffer
from cs_core.errors import NotSupported
from cs_core.store import open_store
from cs_core.testing.tars import layer_tar


def test_vfs_store_api_is_not_supported(tmp_path: Path) -> None:
    store = open_store(graph_root=str(tmp_path / "g"), run_root=str(tmp_path / "r"), driver_name="vfs")
    try:
        with pytest.raises(NotSupported) as info:
            store.prepare_staged_layer(TarDiffer(io.BytesIO(layer_tar([("f", b"f")]))))
        assert str(info.value) == "not supported"
        assert store.layers() == []
        assert not (tmp_path / "g" / "vfs" / "staging").exists()
    finally:
        store.shutdown(force=True)
