"""Test support for the overlay driver: mount cleanup, layer IDs, tree comparison."""

from __future__ import annotations

import os
from pathlib import Path

from cs_overlay import mounting


def unmount_all_under(root: Path) -> None:
    """Detach every mount below ``root``, deepest first (a failed test must not leak mounts)."""
    prefix = str(root.resolve()) + "/"
    for _ in range(3):
        points = [p for p in mounting.mountinfo_targets() if p.startswith(prefix) or p == prefix[:-1]]
        if not points:
            return
        for p in sorted(points, key=len, reverse=True):
            mounting.unmount(p)


def layer_id(n: int) -> str:
    return f"{n:064x}"


def tree(root: Path) -> dict[str, tuple[str, str]]:
    """Relative path -> (kind, content or link target) for comparing mounted trees."""
    out: dict[str, tuple[str, str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            if p.is_symlink():
                out[rel] = ("link", os.readlink(p))
            elif p.is_dir():
                out[rel] = ("dir", oct(p.stat().st_mode & 0o7777))
            else:
                out[rel] = ("file", p.read_bytes().decode("latin-1"))
    return out
