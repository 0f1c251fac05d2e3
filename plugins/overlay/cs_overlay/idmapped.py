"""Kernel ID-mapped mounts of lower layers (Go ``pkg/idmap``, overlay ``supportsIdmappedLowerLayers``).

An ID-mapped mount shows a directory with every owner translated through a user namespace,
without touching the files: a layer stored with host IDs 0..N appears owned by the
container's host IDs. The namespace only has to exist while ``mount_setattr`` attaches it, so
the helper child that owns it is killed and reaped as soon as we hold a file descriptor to it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
from collections.abc import Iterator, Sequence
from pathlib import Path

from cs_core import IDMap
from cs_core.drivers.api import remove_tree
from cs_overlay import syscalls
from cs_overlay.layout import LINK_DIR


def _map_text(maps: Sequence[IDMap]) -> bytes:
    return "".join(f"{m.container_id} {m.host_id} {m.size}\n" for m in maps).encode()


def _write_map(pid: int, name: str, maps: Sequence[IDMap]) -> None:
    # The kernel accepts a map only as one write(2) of the whole text.
    fd = os.open(f"/proc/{pid}/{name}", os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, _map_text(maps))
    finally:
        os.close(fd)


def _child(ready_w: int, hold_r: int) -> None:
    """In the forked helper: enter a new user namespace, report, wait for the parent."""
    status = 0
    try:
        syscalls.unshare(syscalls.CLONE_NEWUSER)
    except OSError as exc:
        status = exc.errno or errno.EPERM
    try:
        os.write(ready_w, bytes([status & 0xFF]))
        os.read(hold_r, 1)  # EOF once the parent is done with us (or has died)
    finally:
        os._exit(0)


@contextlib.contextmanager
def user_namespace(uid_map: Sequence[IDMap], gid_map: Sequence[IDMap]) -> Iterator[int]:
    """A file descriptor of a new user namespace with these maps (Go ``CreateUsernsProcess``).

    Python 3.11 has no ``os.unshare`` and a multi-threaded process may not enter a new user
    namespace itself, so a forked child does; it is reaped before this returns the fd.
    """
    ready_r, ready_w = os.pipe()
    hold_r, hold_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child never returns
        os.close(ready_r)
        os.close(hold_w)
        _child(ready_w, hold_r)
    os.close(ready_w)
    os.close(hold_r)
    ns_fd = -1
    try:
        status = os.read(ready_r, 1)
        if not status or status[0]:
            code = status[0] if status else errno.ECHILD
            raise OSError(code, f"creating a user namespace: {os.strerror(code)}")
        _write_map(pid, "uid_map", uid_map)
        _write_map(pid, "gid_map", gid_map)
        ns_fd = os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    except BaseException:
        if ns_fd >= 0:
            os.close(ns_fd)
        raise
    finally:
        os.close(ready_r)
        os.close(hold_w)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    try:
        yield ns_fd
    finally:
        os.close(ns_fd)


def create_idmapped_mount(source: str, target: str, userns_fd: int) -> None:
    """Attach an ID-mapped clone of the mount at ``source`` on ``target`` (Go ``CreateIDMappedMount``)."""
    tree = syscalls.open_tree(source, syscalls.OPEN_TREE_CLONE | syscalls.OPEN_TREE_CLOEXEC)
    try:
        syscalls.mount_setattr_idmap(tree, userns_fd)
        with contextlib.suppress(FileExistsError):
            os.mkdir(target, 0o700)
        syscalls.move_mount(tree, target)
    finally:
        os.close(tree)


def mapped_mount_root(lower: str) -> str:
    """The directory to ID-map so that ``lower`` is reached through it (Go ``getMappedMountRoot``).

    Lowers named through the ``l/`` short links share one mapped mount of the whole home.
    Unlike Go the path is not cleaned: ``l/LINK/../diff1`` must keep resolving through the link.
    """
    parent = os.path.dirname(lower)
    if os.path.basename(parent) == LINK_DIR:
        return os.path.dirname(parent)
    return parent


def map_lowers(lowers: Sequence[str], mapped_root: Path, userns_fd: int,
               attached: list[str]) -> list[str]:
    """Rewrite ``lowers`` to paths under ID-mapped mounts ``mapped_root/0``, ``/1``, ….

    Each mount made is appended to ``attached`` as soon as it exists, so the caller can detach
    them even if a later one fails.
    """
    mapped_root.mkdir(mode=0o700, parents=True, exist_ok=True)
    roots: dict[str, str] = {}
    out = []
    for lower in lowers:
        src = mapped_mount_root(lower)
        target = roots.get(src)
        if target is None:
            target = str(mapped_root / str(len(roots)))
            try:
                create_idmapped_mount(src, target, userns_fd)
            except OSError as exc:
                raise OSError(exc.errno, f"create mapped mount for {src!r} on {target!r}: "
                              f"{exc.strerror}") from None
            attached.append(target)
            roots[src] = target
        out.append(target + lower[len(src):])
    return out


def detach(attached: list[str]) -> None:
    """Lazily unmount mapped mounts and remove their directories (overlay keeps its own reference)."""
    for target in attached:
        with contextlib.suppress(OSError):
            syscalls.umount(target, syscalls.MNT_DETACH)
        with contextlib.suppress(OSError):
            os.rmdir(target)


def supports_idmapped_lower_layers(home: Path) -> tuple[bool, str]:
    """Whether overlay accepts an ID-mapped lower dir here: a test mount (Go's probe)."""
    if not syscalls.has_new_mount_api():
        return False, "no open_tree/mount_setattr on this architecture"
    try:
        return _probe(home)
    except OSError as exc:  # e.g. no room for the scratch dirs: say no, as Go does
        return False, f"checking idmapped mounts: {exc}"


def _probe(home: Path) -> tuple[bool, str]:
    import tempfile  # with random and shutil: only when a feature is probed

    td = Path(tempfile.mkdtemp(prefix="compat", dir=home))
    attached: list[str] = []
    try:
        for d in ("merged", "lower", "upper", "work"):
            (td / d).mkdir(mode=0o700)
        identity = [IDMap(0, 0, 1)]
        try:
            with user_namespace(identity, identity) as ns:
                create_idmapped_mount(str(td / "lower"), str(td / "lower-mapped"), ns)
                attached.append(str(td / "lower-mapped"))
        except OSError as exc:
            return False, f"create mapped mount: {exc.strerror or exc}"
        try:
            syscalls.mount("overlay", str(td / "merged"), "overlay", 0,
                           f"lowerdir={td}/lower-mapped,upperdir={td}/upper,workdir={td}/work")
        except OSError as exc:
            return False, f"overlay on an idmapped lower: {exc.strerror or exc}"
        syscalls.umount(str(td / "merged"), syscalls.MNT_DETACH)
        return True, ""
    finally:
        detach(attached)
        with contextlib.suppress(OSError):
            remove_tree(td)
