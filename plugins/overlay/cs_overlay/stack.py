"""Deeper stacks than one overlay mount allows (the kernel's limit is 500 lowers).

Runs of up to 500 lower layers are mounted as read-only overlays and those serve as lower
directories of the final overlay (the kernel permits this one level of nesting). A read-only
overlay consumes its whiteouts: a file deleted in one run but present in a run *below* would
reappear. So above every run that is not the bottom one we place a small "whiteout summary"
directory holding that run's whiteouts (character devices 0/0) and opaque directories, which
the outer overlay then applies to the runs beneath.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

from cs_core.drivers.api import remove_tree, walk
from cs_overlay.mounting import OverlayMount, fsmount_overlay

#: The kernel's maximum number of lower layers in one overlay mount (OVL_MAX_STACK).
KERNEL_MAX_LOWERS = 500


def plan(lowers: list[str], limit: int = KERNEL_MAX_LOWERS) -> tuple[list[str], list[list[str]]]:
    """Split ``lowers`` (top first) into individual top lowers and runs to nest (top run first).

    Runs are cut from the bottom so the top layers, the ones a container touches most, stay
    plain lowers whenever they fit.
    """
    if len(lowers) <= limit:
        return lowers, []
    runs: list[list[str]] = []
    rest = list(lowers)
    while rest:
        run, rest = rest[-limit:], rest[:-limit]
        runs.insert(0, run)
        # lowers of the final mount: the runs, a summary above each but the bottom one, and
        # whatever is left individually
        if len(rest) + 2 * len(runs) - 1 <= limit:
            return rest, runs
    return [], runs


def _opaque_xattr(userxattr: bool) -> str:
    return "user.overlay.opaque" if userxattr else "trusted.overlay.opaque"


def _is_opaque(path: str, name: str) -> bool:
    try:
        return os.getxattr(path, name, follow_symlinks=False) == b"y"
    except OSError:
        return False


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _walk(root: str) -> Iterator[tuple[str, bool, bool]]:
    """(path below ``root``, is a directory, is a whiteout) for every entry.

    Iterative and fd-relative (cs_core.walk): no depth limit.
    """
    for d in walk(root):
        for entry in d.entries:
            rel = d.join(entry.name)
            if entry.is_dir(follow_symlinks=False):
                yield rel, True, False
            elif not entry.is_file(follow_symlinks=False) and not entry.is_symlink():
                yield rel, False, _is_whiteout(entry.stat(follow_symlinks=False))


def build_summary(run: list[str], dest: Path, userxattr: bool = False) -> bool:
    """Write the whiteouts and opaque dirs of ``run`` (top first) into ``dest``.

    Returns False when the run has none (then no summary lower is needed).
    """
    opaque = _opaque_xattr(userxattr)
    # path -> "w" (whiteout) / "o" (opaque dir) / "d" (plain dir holding deeper entries)
    marks: dict[str, str] = {}
    for layer in reversed(run):  # bottom first, so higher layers override
        for rel, is_dir, whiteout in _walk(layer):
            if is_dir:
                if _is_opaque(os.path.join(layer, rel), opaque) or marks.get(rel) == "w":
                    marks[rel] = "o"
            elif whiteout:
                prefix = rel + "/"
                for key in [k for k in marks if k.startswith(prefix)]:
                    del marks[key]
                marks[rel] = "w"
    if not marks:
        return False
    if dest.exists():
        remove_tree(dest)
    dest.mkdir(parents=True, mode=0o755)
    for rel in sorted(marks, key=lambda p: p.count("/")):
        path = dest / rel
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        if marks[rel] == "w":
            os.mknod(path, stat.S_IFCHR | 0, 0)
        else:
            path.mkdir(exist_ok=True, mode=0o755)
            if marks[rel] == "o":
                os.setxattr(path, opaque, b"y", follow_symlinks=False)
    return True


def nested_lowers(lowers: list[str], scratch: Path, options: list[str],
                  userxattr: bool = False) -> tuple[list[str | int], list[int]]:
    """Lowers for the final mount; the fds returned must be closed after mounting."""
    top, runs = plan(lowers)
    out: list[str | int] = list(top)
    fds: list[int] = []
    try:
        for i, run in enumerate(runs):
            fd = fsmount_overlay(OverlayMount(lowers=list(run), options=[*options, "ro"]))
            fds.append(fd)
            out.append(fd)
            if i < len(runs) - 1:
                summary = scratch / f"whiteouts-{i}"
                if build_summary(run, summary, userxattr):
                    out.append(str(summary))
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    return out, fds
