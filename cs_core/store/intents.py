"""Notes that let the next process finish what a killed one left half-done across record stores.

Some operations change two record stores, which cannot be saved atomically together: creating
a container makes its layer, then the container record; deleting one removes the record, then
the layer; deleting an image removes the record, then the layers only it used. A kill between
the two steps leaves layers nothing refers to. Before such an operation starts, it writes the
IDs of the layers it may strand into an intent file and holds that file locked while it runs.
When a store is opened, an intent file whose lock can be taken belongs to a dead process: the
layers it names are deleted if, and only if, nothing refers to them any more.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from cs_core import atomic, lazylog, lockfile

log = lazylog.getLogger(__name__)

INTENTS_DIR = ".cs-intents"


class Intent:
    """A live intent: its file stays locked until ``end()``."""

    def __init__(self, path: Path, layer_ids: Sequence[str]) -> None:
        self.path = path
        self._lock = lockfile.get(path)
        # Lock before writing the IDs: a reader that finds the file unlocked and empty
        # leaves it alone (see ``stale``), so there is no window in which it looks dead.
        self._lock.lock()
        # Through the lock's own descriptor: closing any other one would drop the lock.
        self._lock.write_content(json.dumps(list(layer_ids)).encode())

    def end(self) -> None:
        with contextlib.suppress(OSError):
            self.path.unlink()
        self._lock.unlock()
        # Intent paths are used once: do not let the process-wide lock registry grow.
        lockfile._registry.pop((str(self.path), False), None)


class _NoIntent:
    def end(self) -> None:
        pass


class LayerIntents:
    def __init__(self, directory: Path) -> None:
        self.directory = directory / INTENTS_DIR

    def begin(self, layer_ids: Sequence[str]) -> Intent | _NoIntent:
        """Note ``layer_ids``; on a full disk carry on without a note (a delete must work
        there, and a crash would then only strand layers, as the Go library does)."""
        for attempt in (1, 2):
            path = self.directory / f"intent-{os.urandom(8).hex()}"
            try:
                self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
                return Intent(path, layer_ids)
            except OSError as exc:
                lockfile._registry.pop((str(path), False), None)
                with contextlib.suppress(OSError):
                    path.unlink()
                if not atomic.is_no_space(exc):
                    raise
                if attempt == 1 and atomic.release_space_reserve(self.directory.parent):
                    continue
                log.warning("no room to note an operation in %s: %s", self.directory, exc)
        return _NoIntent()

    def stale(self) -> Iterator[list[str]]:
        """Layer lists of intents whose process died; each is removed after the caller's turn."""
        try:
            names = sorted(os.listdir(self.directory))
        except FileNotFoundError:
            return
        for name in names:
            path = self.directory / name
            lock = lockfile.get(path)
            if not lock.try_lock():
                continue  # its process is still working
            try:
                if not path.exists():
                    continue
                text = lock.read_content().decode("utf-8", "replace")
                if not text:
                    continue  # being created right now by a process that has not locked it yet
                try:
                    ids = [str(x) for x in json.loads(text)]
                except (ValueError, TypeError):
                    ids = []
                yield ids
                with contextlib.suppress(OSError):
                    path.unlink()
            finally:
                lock.unlock()
