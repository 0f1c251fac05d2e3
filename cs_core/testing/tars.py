"""Small layer tars for tests: the one way every test suite (ours and drivers') builds them."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterable, Mapping

#: A fixed time, so that tars built twice are byte-identical.
MTIME = 1_700_000_000


Entry = tuple[str, bytes | None] | tuple[str, bytes | None, int]


def layer_tar(entries: Iterable[Entry], *, uid: int = 0, gid: int = 0,
              file_mode: int = 0o644, dir_mode: int = 0o755,
              owners: Mapping[str, tuple[int, int]] | None = None) -> bytes:
    """A PAX tar of ``(name, data[, mode])`` entries; ``data`` None makes a directory.

    A trailing ``/`` on a name is dropped; without a mode, files get ``file_mode`` and
    directories ``dir_mode``. Entries are owned by ``uid``:``gid`` unless ``owners`` names them
    (``{name: (uid, gid)}``).
    """
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data, *mode in entries:
            info = tarfile.TarInfo(name.rstrip("/"))
            info.mtime = MTIME
            info.uid, info.gid = (owners or {}).get(info.name, (uid, gid))
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, mode[0] if mode else dir_mode
                tar.addfile(info)
            else:
                info.size, info.mode = len(data), mode[0] if mode else file_mode
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def owned_file_tar(uid: int, gid: int, name: str = "owned", data: bytes = b"hi") -> bytes:
    """A one-file layer whose file belongs to ``uid``:``gid`` (container IDs): for ID-map tests."""
    return layer_tar([(name, data)], uid=uid, gid=gid)
