"""btrfs has no staging capability: staged layers fail with Go's ErrNotSupported."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from cs_core.drivers.staging import TarDiffer
from cs_core.errors import NotSupported
from cs_core.store import open_store


def test_staged_layers_are_not_supported(graph_dir: Path) -> None:
    store = open_store(graph_root=str(graph_dir / "graph"), run_root=str(graph_dir / "run"),
                       driver_name="btrfs")
    try:
        with pytest.raises(NotSupported, match=r"^not supported$"):
            store.prepare_staged_layer(TarDiffer(io.BytesIO(b"")))
        assert store.layers() == []
    finally:
        store.shutdown(force=True)
