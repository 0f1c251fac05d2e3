"""The overlay driver's staging area: ``<home>/staging/<random>/{staging.lock,dir/}``.

Content is filled in ``dir/`` and then swapped with the layer's (empty) ``diff/`` by one
``renameat2(RENAME_EXCHANGE)``: a crash leaves the layer with its old content or the new, never
a mix, and the old ``diff/`` ends up in the staging directory, removed with it.
"""

from __future__ import annotations

import errno
import os
import threading
from pathlib import Path

from cs_core import StagedLayer
from cs_core.drivers.api import (
    CONTENT_DIR,
    STAGING_DIR,
    StagingLock,
    new_staging_dir,
    prune_staging_dirs,
    remove_staging_dir,
    remove_tree,
)
from cs_overlay import syscalls
from cs_overlay.errors import OverlayError


class StagingArea:
    def __init__(self, home: Path) -> None:
        self.base = home / STAGING_DIR
        # The staging directories this driver instance holds (Go ``stagingDirsLocks``).
        self._locks: dict[Path, StagingLock] = {}
        self._guard = threading.Lock()

    def new(self, content_mode: int) -> Path:
        """A fresh locked staging directory; returns its (empty) content directory."""
        layer_dir, lock = new_staging_dir(self.base, content_mode)
        with self._guard:
            self._locks[layer_dir] = lock
        return layer_dir / CONTENT_DIR

    def _layer_dir(self, staged: StagedLayer) -> Path:
        layer_dir = Path(os.path.abspath(staged.target)).parent
        if layer_dir.parent != self.base:
            raise OverlayError(f'"{staged.target}" is not a staging directory')
        return layer_dir

    def remove(self, staged: StagedLayer) -> None:
        """Release and delete ``staged``'s staging directory."""
        layer_dir = self._layer_dir(staged)
        with self._guard:
            lock = self._locks.pop(layer_dir, None)
        if os.path.lexists(layer_dir):
            remove_staging_dir(layer_dir, lock)
        elif lock is not None:
            lock.unlock_and_delete()

    def move_into(self, staged: StagedLayer, diff: Path, mode: int | None, *,
                  as_is: bool = False) -> None:
        """Make ``staged``'s content the directory ``diff`` (owner kept, ``mode`` if given;
        with ``as_is``, the staged root keeps its own owner and mode)."""
        self._layer_dir(staged)
        src = Path(os.path.abspath(staged.target))
        try:
            st = os.stat(diff)
        except FileNotFoundError:
            st = None
        if st is not None and not as_is:
            os.chown(src, st.st_uid, st.st_gid)  # the layer's root owner (ID-mapped layers)
        if mode is not None:
            os.chmod(src, mode)
        if st is None:
            os.rename(src, diff)
            return
        try:
            syscalls.rename_exchange(str(src), str(diff))
        except OSError as exc:
            if exc.errno == errno.EXDEV:
                raise OverlayError(f"staging directory {src} and layer {diff} are on different "
                                   "filesystems") from None
            if exc.errno not in (errno.EINVAL, errno.ENOSYS):
                raise
            # No exchange on this filesystem: Go's way, remove then rename (not crash-atomic,
            # but the store's applying flag resets the layer if we die in between).
            remove_tree(diff)
            os.rename(src, diff)

    def prune(self) -> bool:
        """Release what this instance holds, then remove every directory nobody holds (Go
        ``pruneStagingDirectories``); returns whether some (held by others) remain."""
        with self._guard:
            held = list(self._locks.values())
            self._locks.clear()
        for lock in held:
            lock.unlock_and_delete()
        return prune_staging_dirs(self.base)
