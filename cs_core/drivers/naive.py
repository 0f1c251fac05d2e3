"""Diff, changes, apply and ID re-mapping for drivers without native ones (Go ``NaiveDiffDriver``).

Everything here works on mounted trees: the driver's ``get``/``put`` are the only driver calls.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import io
import os
import stat
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from cs_core import lazylog, walk
from cs_core.archive.apply import ApplyOptions, apply_tar
from cs_core.archive.changes import changes_dirs, export_changes, export_tree
from cs_core.archive.idmap import to_container, to_host
from cs_core.drivers.options import ApplyDiffOpts, CreateOpts, MountOpts
from cs_core.errors import ArchiveFormatError, InvalidMappings
from cs_core.model import NO_MAPS, ApplyResult, Change, IDMap, IDMapPair

if TYPE_CHECKING:
    from cs_core.archive.tarsplit import TarSplitWriter
    from cs_core.drivers.base import GraphDriver

log = lazylog.getLogger(__name__)

_F_SETPIPE_SZ = 1031
_OVERFLOW_ID = 65534


def _opaque_xattr(driver: GraphDriver) -> str:
    return str(getattr(driver, "opaque_xattr", "trusted.overlay.opaque"))


def apply_diff(
    driver: GraphDriver, id: str, parent: str | None, stream: BinaryIO, opts: ApplyDiffOpts
) -> ApplyResult:
    """Mount layer ``id`` read-write and extract ``stream`` into it (whiteouts in the driver's format)."""
    root = driver.get(id, MountOpts(mount_label=opts.mount_label))
    try:
        return apply_into(driver, root, stream, opts)
    finally:
        driver.put(id)


def apply_into(driver: GraphDriver, root: str | os.PathLike[str], stream: BinaryIO,
               opts: ApplyDiffOpts) -> ApplyResult:
    """Extract ``stream`` into the tree ``root`` as ``driver``'s naive apply does (a mounted
    layer, or a staged tree that is not a layer yet)."""
    options = ApplyOptions(
        whiteout_format=driver.whiteout_format,
        opaque_xattr=_opaque_xattr(driver),
        uid_map=tuple(opts.uid_map),
        gid_map=tuple(opts.gid_map),
        ignore_chown_errors=opts.ignore_chown_errors,
        force_mask=opts.force_mask,
        progress=opts.progress,
    )
    return apply_logged(root, stream, options, opts.tar_split)


def apply_logged(root: str | os.PathLike[str], stream: BinaryIO, options: ApplyOptions,
                 tar_split: TarSplitWriter | None) -> ApplyResult:
    """``apply_tar`` as Go's NaiveDiffDriver reports a failure: logged, then returned.

    Go extracts in a re-exec'd helper whose stderr and exit status make up the error, so a
    stream that is no tar reads ``ApplyLayer stdout:  stderr: <tar's error> exit status 1``.
    """
    try:
        return apply_tar(root, stream, options, tar_split=tar_split)
    except ArchiveFormatError as exc:
        wrapped = ArchiveFormatError(f"ApplyLayer stdout:  stderr: {exc} exit status 1")
        log.error("While applying layer: %s", wrapped)
        raise wrapped from None
    except Exception as exc:
        log.error("While applying layer: %s", exc)
        raise


def create_from_template(
    driver: GraphDriver,
    id: str,
    template: str,
    template_maps: tuple[Sequence[IDMap], Sequence[IDMap]],
    parent: str | None,
    parent_maps: tuple[Sequence[IDMap], Sequence[IDMap]],
    opts: CreateOpts,
    read_write: bool,
) -> None:
    """A new layer on ``parent`` with the template's diff, owned for ``opts``'s maps.

    Go's ``NaiveCreateFromTemplate`` applies the diff with the template's maps and re-owns the
    whole layer afterwards. We re-own the new, still empty layer first (that is what gives a
    layered driver the parent's files owned for the new maps) and apply the diff with the
    new maps: the same owners, but on overlay the template's files stay in ``diff/``, where
    Go's DiffGetter finds them (re-owning rotates what is there into ``diff1/``).
    """
    if read_write:
        driver.create_read_write(id, parent, opts)
    else:
        driver.create(id, parent, opts)
    try:
        if parent:
            driver.reown_copy(id, parent_maps, opts)
        stream = driver.diff(template, parent, template_maps[0], template_maps[1], parent_maps)
        try:
            driver.apply_diff(id, parent, stream, ApplyDiffOpts(
                uid_map=opts.uid_map, gid_map=opts.gid_map, mount_label=opts.mount_label))
        finally:
            stream.close()
    except BaseException:
        with contextlib.suppress(Exception):
            driver.remove(id)
        raise


class PipeStream(io.RawIOBase):
    """The read end of a pipe filled by a producer thread; errors surface on read, cleanup on close."""

    def __init__(self, produce: Callable[[BinaryIO], None],
                 cleanup: Callable[[], None] = lambda: None) -> None:
        rfd, wfd = os.pipe2(os.O_CLOEXEC)
        with contextlib.suppress(OSError):
            fcntl.fcntl(wfd, _F_SETPIPE_SZ, 1 << 20)
        self._reader = open(rfd, "rb", buffering=0)  # noqa: SIM115 - closed in close()
        self._error: BaseException | None = None
        self._cleanup = cleanup
        self._thread = threading.Thread(target=self._run, args=(produce, wfd), daemon=True)
        self._thread.start()

    def _run(self, produce: Callable[[BinaryIO], None], wfd: int) -> None:
        try:
            with open(wfd, "wb", buffering=1 << 20) as out:
                produce(out)  # type: ignore[arg-type]
        except BrokenPipeError:
            pass  # the consumer stopped reading
        except BaseException as exc:  # handed to the reading thread
            self._error = exc

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        n = self._reader.readinto(b) or 0
        if n == 0:
            self._thread.join()
            if self._error is not None:
                err, self._error = self._error, None
                raise err
        return n

    def close(self) -> None:
        if not self.closed:
            self._reader.close()
            self._thread.join()
            self._cleanup()
        super().close()


def diff(
    driver: GraphDriver,
    id: str,
    parent: str | None,
    uid_map: Sequence[IDMap] = (),
    gid_map: Sequence[IDMap] = (),
    parent_maps: IDMapPair | None = None,
) -> BinaryIO:
    """An uncompressed tar of what ``id`` changes against ``parent``, streamed (bounded memory).

    ``uid_map``/``gid_map`` are layer ``id``'s maps, ``parent_maps`` the parent's (by default
    the same): each tree's owners are read through its own layer's maps (Go passes both).
    """
    layer_fs = driver.get(id, MountOpts())
    try:
        if parent is None:

            def produce(out: BinaryIO) -> None:
                export_tree(layer_fs, out, uid_map=uid_map, gid_map=gid_map)

            return PipeStream(produce, lambda: driver.put(id))  # type: ignore[return-value]
        parent_fs = driver.get(parent, MountOpts(options=("ro",)))
    except BaseException:
        driver.put(id)
        raise
    try:
        maps = (uid_map, gid_map)
        found = changes_dirs(layer_fs, parent_fs, maps, maps if parent_maps is None else parent_maps)
    except BaseException:
        driver.put(parent)
        driver.put(id)
        raise

    def produce_changes(out: BinaryIO) -> None:
        export_changes(layer_fs, found, out, uid_map, gid_map)

    def cleanup() -> None:
        try:
            driver.put(id)
        finally:
            driver.put(parent)  # type: ignore[arg-type]

    return PipeStream(produce_changes, cleanup)  # type: ignore[return-value]


def changes(driver: GraphDriver, id: str, parent: str | None, maps: IDMapPair = NO_MAPS,
            parent_maps: IDMapPair = NO_MAPS) -> list[Change]:
    """Paths ``id`` adds, modifies or deletes against ``parent`` (Go ``ChangesDirs``), sorted.

    ``maps`` are layer ``id``'s, ``parent_maps`` the parent's: owners compare as container IDs.
    """
    layer_fs = driver.get(id, MountOpts())
    try:
        if parent is None:
            return changes_dirs(layer_fs, None)
        parent_fs = driver.get(parent, MountOpts(options=("ro",)))
        try:
            return changes_dirs(layer_fs, parent_fs, maps, parent_maps)
        finally:
            driver.put(parent)
    finally:
        driver.put(id)


def changes_size(root: Path, found: Sequence[Change]) -> int:
    """Sum of sizes of added/modified non-directories, hardlinks once (Go ``ChangesSize``)."""
    total = 0
    seen: set[int] = set()
    for change in found:
        if change.kind == Change.DELETE:
            continue
        try:
            st = os.lstat(os.path.join(root, change.path.lstrip("/")))
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode):
            continue
        if st.st_nlink > 1:
            if st.st_ino in seen:
                continue
            seen.add(st.st_ino)
        total += st.st_size
    return total


def diff_size(driver: GraphDriver, id: str, parent: str | None, maps: IDMapPair = NO_MAPS,
              parent_maps: IDMapPair = NO_MAPS) -> int:
    found = changes(driver, id, parent, maps, parent_maps)
    layer_fs = driver.get(id, MountOpts())
    try:
        return changes_size(layer_fs, found)
    finally:
        driver.put(id)


def _map_pair(
    uid: int,
    gid: int,
    to_ctr: tuple[Sequence[IDMap], Sequence[IDMap]],
    to_hst: tuple[Sequence[IDMap], Sequence[IDMap]],
    path: str,
) -> tuple[int, int]:
    if to_ctr[0] or to_ctr[1]:
        try:
            uid, gid = to_container(uid, to_ctr[0]), to_container(gid, to_ctr[1])
        except InvalidMappings as exc:
            if uid != 0 or gid != 0:
                raise InvalidMappings(
                    f"mapping host ID pair for {path!r} to container: {exc.detail}"
                ) from None
    if to_hst[0] or to_hst[1]:
        root_uid = _try_host(0, to_hst[0])
        root_gid = _try_host(0, to_hst[1])
        uid = root_uid if uid == 0 else _try_host(uid, to_hst[0])
        gid = root_gid if gid == 0 else _try_host(gid, to_hst[1])
    return uid, gid


def _try_host(cid: int, maps: Sequence[IDMap]) -> int:
    try:
        return to_host(cid, maps)
    except InvalidMappings:
        return _OVERFLOW_ID


def update_layer_id_map(
    driver: GraphDriver,
    id: str,
    to_container: tuple[Sequence[IDMap], Sequence[IDMap]],
    to_host: tuple[Sequence[IDMap], Sequence[IDMap]],
    mount_label: str = "",
) -> None:
    """Re-own every file of layer ``id`` from one mapping to another (Go's chown-by-maps walk)."""
    root = driver.get(id, MountOpts(mount_label=mount_label))
    try:
        _chown_tree(str(root), to_container, to_host)
    finally:
        driver.put(id)


def _chown_tree(
    root: str,
    to_ctr: tuple[Sequence[IDMap], Sequence[IDMap]],
    to_hst: tuple[Sequence[IDMap], Sequence[IDMap]],
) -> None:
    # fd-relative and iterative (cs_core.walk): a layer nested thousands deep must not stop
    # a re-own half-way, and nothing in the layer is followed.
    # Hard-linked inodes re-owned so far: their first name, and its inode after the chown.
    linked: dict[tuple[int, int], tuple[str, tuple[int, int]]] = {}
    for d in walk.walk(root):
        for entry in d.entries:
            st = entry.stat(follow_symlinks=False)
            key = (st.st_dev, st.st_ino)
            if key in linked:
                _relink(root, linked[key], d.fd, entry.name)
                continue
            uid, gid = _map_pair(st.st_uid, st.st_gid, to_ctr, to_hst,
                                 os.path.join(root, d.join(entry.name)))
            if (uid, gid) != (st.st_uid, st.st_gid):
                _chown_entry(d.fd, entry.name, st, uid, gid)
            if st.st_nlink > 1 and not stat.S_ISDIR(st.st_mode):
                now = os.stat(entry.name, dir_fd=d.fd, follow_symlinks=False)
                linked[key] = (d.join(entry.name), (now.st_dev, now.st_ino))


def _relink(root: str, first: tuple[str, tuple[int, int]], dirfd: int, name: str) -> None:
    """Make ``name`` a link to the inode its first name now has, as Go's chowner does.

    On overlay without an index, the chown of one name copied the file up into a new inode
    and every other name still shows the lower one (with the old owner): a hard link of the
    image would come out broken in two. Elsewhere the names still share the inode.
    """
    first_rel, first_key = first
    st = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
    if (st.st_dev, st.st_ino) == first_key:
        return
    fd = walk.open_beneath(root, first_rel, os.O_PATH)
    try:
        # Linked beside, then renamed over: the name is never missing, even if we die here.
        tmp = f".cs-relink-{os.getpid()}-{name}"[:255]
        os.link(f"/proc/self/fd/{fd}", tmp, dst_dir_fd=dirfd, follow_symlinks=True)
        try:
            os.rename(tmp, name, src_dir_fd=dirfd, dst_dir_fd=dirfd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dirfd)
            raise
    finally:
        os.close(fd)


def _chown_entry(dirfd: int, name: str, st: os.stat_result, uid: int, gid: int) -> None:
    """Re-own one entry, keeping the setuid/setgid bits and file capabilities chown clears."""
    if stat.S_ISLNK(st.st_mode):
        os.chown(name, uid, gid, dir_fd=dirfd, follow_symlinks=False)
        return
    # xattr calls take no dir fd: reach the inode through its O_PATH fd's /proc link.
    fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dirfd)
    try:
        inode = f"/proc/self/fd/{fd}"
        cap = None
        with contextlib.suppress(OSError):
            cap = os.getxattr(inode, "security.capability")
        os.chown(inode, uid, gid)
        if st.st_mode & (stat.S_ISUID | stat.S_ISGID):
            os.chmod(inode, stat.S_IMODE(st.st_mode))
        if cap is not None:
            try:
                os.setxattr(inode, "security.capability", cap)
            except OSError as exc:
                if exc.errno not in (errno.ENOTSUP, errno.EOPNOTSUPP):
                    raise
    finally:
        os.close(fd)
