"""Container records: ``<driver>-containers/containers.json`` (+ volatile) and big data."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from cs_core import lockfile
from cs_core.errors import ContainerUnknown
from cs_core.model import Container
from cs_core.records.base import RecordFile, RecordStore


class ContainerStore(RecordStore[Container]):
    kind = "container"
    record_cls = Container
    unknown_error = ContainerUnknown

    def __init__(self, directory: Path, *, volatile_directory: Path | None = None) -> None:
        # In transient mode the lock and the volatile file live under the runroot.
        lock_dir = volatile_directory or directory
        lock = lockfile.get(lock_dir / "containers.lock")
        files = [
            RecordFile(directory / "containers.json"),
            RecordFile(lock_dir / "volatile-containers.json", volatile=True),
        ]
        super().__init__(directory, files, lock)

    def path_ids(self, container: Container) -> list[str]:
        return [container.id, *(v for v in (container.layer, container.image) if v)]

    @staticmethod
    def _layer_key(record: Container) -> Iterable[str]:
        return (record.layer,)

    lookup_extra = _layer_key

    def _mark_loaded(self, record: Container, source: RecordFile) -> None:
        record.volatile_store = source.volatile

    def _file_for(self, record: Container) -> RecordFile:
        return self.files[1] if record.volatile_store else self.files[0]

    def by_layer(self, layer_id: str) -> Container | None:
        for container in self.mentioning(layer_id):
            if container.layer == layer_id:
                return container
        return None

    def by_image(self, image_id: str) -> list[Container]:
        return [c for c in self.mentioning(image_id) if c.image == image_id]
