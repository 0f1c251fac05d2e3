"""The on-disk layout Go's overlay driver uses, read and written byte-for-byte alike.

``<home>/<id>/{diff,link,lower,work,merged,empty}`` and ``<home>/l/<LINK> -> ../<id>/diff``.
Lower layers are referenced through the 26-character links so that the mount data stays
short; the ``lower`` file lists them nearest parent first.
"""

from __future__ import annotations

import base64
import contextlib
import os
from pathlib import Path

from cs_core.drivers.api import getLogger, write_in_place

LINK_DIR = "l"
LOWER_FILE = "lower"
ID_LENGTH = 26
#: Go's limit on lower layers (HEAD; 1.43 had 128), also the kernel's per-mount maximum.
MAX_DEPTH = 500

log = getLogger(__name__)  # logging itself is imported when something is logged


def generate_link_id(length: int = ID_LENGTH) -> str:
    """Random base32 name (``A-Z2-7``) as Go's ``generateID``."""
    raw = os.urandom((length * 5 + 7) // 8)  # what secrets.token_bytes returns, minus its imports
    return base64.b32encode(raw).decode()[:length]


def diff_suffix(name: str, n: int) -> str:
    return name if n == 0 else f"{name}{n}"


class Layout:
    """Path arithmetic and link bookkeeping for one driver home (plus read-only image stores)."""

    def __init__(self, home: Path, image_stores: list[Path], name: str = "overlay",
                 split_image_store: Path | None = None) -> None:
        self.home = home
        self.image_stores = image_stores
        self.name = name
        #: Writable homes: the driver home and, with a split image store, its ``overlay/``
        #: (where read-only layers are created, as Go HEAD does).
        self.homes = [home] + ([split_image_store / name] if split_image_store else [])
        self._roots = [str(h) for h in self.homes] + [str(st / name) for st in image_stores]

    def dir2(self, id: str) -> tuple[Path, bool]:
        """The layer's directory and whether it lives in an additional (read-only) store."""
        for h in self.homes:
            if (h / id).exists():
                return h / id, False
        for store in self.image_stores:
            other = store / self.name / id
            if other.exists():
                return other, True
        return self.home / id, False

    def dir(self, id: str) -> Path:
        return self.dir2(id)[0]

    def read_link(self, id: str) -> str:
        """The layer's short-link name, recreating lost links once as Go does."""
        path = self.dir(id) / "link"
        try:
            return path.read_text()
        except FileNotFoundError:
            log.warning("Can't read link %s because it does not exist; recreating the missing links",
                        path)
            self.recreate_symlinks()
            return path.read_text()

    def lower_for_child(self, parent: str) -> str:
        """The ``lower`` file content of a new child of ``parent``."""
        parent_dir = self.dir(parent)
        os.lstat(parent_dir)
        lowers = [f"{LINK_DIR}/{self.read_link(parent)}"]
        with contextlib.suppress(FileNotFoundError):
            lowers += (parent_dir / LOWER_FILE).read_text().split(":")
        return ":".join(lowers)

    def lower_entries(self, id: str) -> list[str]:
        try:
            text = (self.dir(id) / LOWER_FILE).read_text()
        except FileNotFoundError:
            return []
        return [s for s in text.split(":") if s]

    def resolve_lower(self, entry: str) -> Path:
        """An ``l/LINK`` entry as an absolute path (our homes' links, else a read-only store's)."""
        return Path(self.resolve_lower_str(entry))

    def resolve_lower_str(self, entry: str) -> str:
        # Plain strings: this runs once per lower layer on every mount of deep stacks.
        for root in self._roots:
            path = f"{root}/{entry}"
            if os.path.exists(path):
                return path
        path = f"{self.home}/{entry}"
        log.warning("Can't stat lower layer %s because it does not exist; recreating symlinks", path)
        self.recreate_symlinks()
        for root in self._roots[:len(self.homes)]:
            if os.path.exists(f"{root}/{entry}"):
                return f"{root}/{entry}"
        return path

    def lower_diff_dirs(self, id: str) -> list[Path]:
        """Resolved diff dirs of every lower layer, nearest first (Go ``getLowerDirs``)."""
        out = []
        for entry in self.lower_entries(id):
            link = self.resolve_lower(entry)
            target = os.readlink(link)
            out.append(Path(os.path.normpath(os.path.join(link.parent, target))))
        return out

    def create_link(self, layer_dir: Path) -> str:
        """A new short link for the layer at ``layer_dir``, in its home's ``l/``."""
        lid = generate_link_id()
        os.symlink(f"../{layer_dir.name}/diff", layer_dir.parent / LINK_DIR / lid)
        write_in_place(layer_dir / "link", lid.encode(), 0o644)
        return lid

    def recreate_symlinks(self) -> None:
        """Make ``l/`` and every layer's ``link`` file agree again (Go ``recreateSymlinks``)."""
        for home in self.homes:
            if home.is_dir():
                self._recreate_symlinks(home)

    def _recreate_symlinks(self, home: Path) -> None:
        link_dir = home / LINK_DIR
        link_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
        errors: list[str] = []
        for _ in range(10):
            progress = False
            errors = []
            for entry in os.scandir(home):
                if entry.name == LINK_DIR or not entry.is_dir(follow_symlinks=False):
                    continue
                try:
                    name = (Path(entry.path) / "link").read_text().strip("\n")
                except OSError as exc:
                    if (Path(entry.path) / "diff").is_dir():
                        errors.append(f"reading name of symlink for {entry.name!r}: {exc.strerror}")
                    continue
                if not os.path.lexists(link_dir / name):
                    os.symlink(f"../{entry.name}/diff", link_dir / name)
                    progress = True
            for link in os.scandir(link_dir):
                target = os.readlink(link.path)
                parts = target.split("/")
                if len(parts) != 3 or parts[0] != ".." or parts[2] != "diff":
                    os.unlink(link.path)
                    progress = True
                    continue
                link_file = home / parts[1] / "link"
                try:
                    current = link_file.read_text()
                except OSError:
                    current = None
                if current != link.name:
                    if not link_file.parent.is_dir():
                        os.unlink(link.path)  # dangling: its layer is gone
                    else:
                        write_in_place(link_file, link.name.encode(), 0o644)
                    progress = True
            if not progress:
                break
        if errors:
            log.warning("recreating overlay links: %s", "; ".join(errors))
