"""Who owns a file, as the store shows it: through a mount, and in a layer's diff."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cs_core.store import Store


def owners_through_mount(store: Store, ref: str, path: str) -> tuple[int, int]:
    """(uid, gid) of ``path`` in layer or container ``ref``, mounted for the look and unmounted."""
    root = Path(store.mount(ref))
    try:
        st = os.lstat(root / path)
    finally:
        store.unmount(ref)
    return st.st_uid, st.st_gid


def owners_in_diff(store: Store, layer: str, name: str) -> tuple[int, int]:
    """(uid, gid) that ``layer``'s diff gives member ``name`` (container IDs)."""
    out = io.BytesIO()
    store.diff(None, layer, out)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        member = tar.getmember(name)
    return member.uid, member.gid
