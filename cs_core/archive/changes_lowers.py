"""The lower layers below an overlay upper dir, read without leaving them: shared by
``overlay_changes`` and the overlay export's opaque-directory test.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator, Sequence

from cs_core.archive.changes_common import is_whiteout
from cs_core.archive.saferoot import openat2


class Lower:
    """A lower layer's entries as ``os.stat`` of ``layer/rel`` gives them (Go follows links
    here), but with every symlink resolved inside the layer (``openat2(RESOLVE_IN_ROOT)``): a
    hostile layer's link cannot make us stat host paths.

    Opened once per comparison: a name is one ``fstatat`` in its parent's cached ``O_PATH`` fd
    (only a symlink takes the slower ``openat2``), and whether an ancestor is a whiteout is
    remembered, since every entry of an upper directory asks about the same ancestors.
    """

    _CACHE = 256

    def __init__(self, layer: str) -> None:
        try:
            self.root: int | None = os.open(layer, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        except (FileNotFoundError, NotADirectoryError):
            self.root = None
        self._parents: dict[str, int | None] = {}
        self._whiteout_dirs: dict[str, bool] = {}

    def close(self) -> None:
        self._drop_parents()
        if self.root is not None:
            os.close(self.root)
            self.root = None

    def _drop_parents(self) -> None:
        for fd in self._parents.values():
            if fd is not None:
                os.close(fd)
        self._parents.clear()

    def _resolve(self, rel: str, flags: int = os.O_PATH) -> int | None:
        assert self.root is not None
        try:
            return openat2(self.root, rel or ".", flags)
        except OSError as err:
            if err.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                return None
            raise

    def _parent(self, parent: str) -> int | None:
        if not parent:
            return self.root
        if parent not in self._parents:
            if len(self._parents) >= self._CACHE:
                self._drop_parents()
            self._parents[parent] = self._resolve(parent)
        return self._parents[parent]

    def stat(self, rel: str) -> os.stat_result | None:
        if self.root is None:
            return None
        parent, _, name = rel.rpartition("/")
        pfd = self._parent(parent)
        if pfd is None:
            return None
        try:
            st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not stat.S_ISLNK(st.st_mode):
            return st
        fd = self._resolve(rel)
        if fd is None:
            return None
        try:
            return os.fstat(fd)
        finally:
            os.close(fd)

    def whiteout(self, rel: str) -> bool:
        st = self.stat(rel)
        return st is not None and is_whiteout(st)

    def whiteout_above(self, rel: str) -> bool:
        """Whether a directory above ``rel`` is a whiteout in this layer."""
        parts = rel.split("/")[:-1]
        while parts:
            anc = "/".join(parts)
            known = self._whiteout_dirs.get(anc)
            if known is None:
                known = self._whiteout_dirs[anc] = self.whiteout(anc)
            if known:
                return True
            parts.pop()
        return False

    def hides_opaque(self, rel: str) -> bool | None:
        """For an opaque directory ``rel`` of the layer above: True if this layer has something
        there (the directory replaced it), False if it is hidden already; None: look lower."""
        lst = self.stat(rel)
        if lst is not None:
            return not is_whiteout(lst)
        if self.whiteout_above(rel):
            return False
        return None


@contextlib.contextmanager
def lowers_of(layers: Sequence[str]) -> Iterator[list[Lower]]:
    opened = [Lower(layer) for layer in layers]
    try:
        yield opened
    finally:
        for layer in opened:
            layer.close()
