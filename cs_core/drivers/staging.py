"""Staged layers (Go ``DriverWithDiffer``): content is filled in a private staging directory
first and only then moved into a layer, by one rename.

A driver that can do this subclasses :class:`StagingDriver` next to ``GraphDriver``; the store
checks for it and raises Go's ``ErrNotSupported`` otherwise. A *differ* fills the staging
directory (Go's zstd:chunked puller is one; :class:`TarDiffer` applies a tar stream) and reports
what the layer record needs: sizes, digests, owners, tar-split.

Each staging directory ``<home>/staging/<random>/`` holds ``staging.lock``, locked (a POSIX
record lock, as Go's ``staging_lockfile``) for as long as a process uses it. A directory whose
lock nobody holds was left by a process that died between prepare and apply; the driver prunes
it (:func:`prune_staging_dirs`).
"""

from __future__ import annotations

import abc
import contextlib
import errno
import fcntl
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Protocol

from cs_core import atomic, recordclass
from cs_core.archive.ingest import IngestReport
from cs_core.atomic import remove_tree
from cs_core.drivers.base import ApplyDiffOpts, CreateOpts
from cs_core.model import ApplyResult

if TYPE_CHECKING:
    from cs_core.archive.apply import ApplyOptions

STAGING_DIR = "staging"
LOCK_FILE = "staging.lock"
CONTENT_DIR = "dir"
TAR_SPLIT_FILE = "tar-split.gz"
_MAX_TRIES = 1000  # Go's CreateAndLock limit


@recordclass.define
class StagedLayer:
    """What a differ produced (Go ``DriverWithDifferOutput``); ``target`` holds the content."""

    target: Path
    size: int = 0
    uids: list[int] = recordclass.field(factory=list)
    gids: list[int] = recordclass.field(factory=list)
    uncompressed_digest: str = ""
    compressed_digest: str = ""
    compressed_size: int = 0
    compression: int = 0
    #: gzip-compressed tar-split of the stream the content came from, if there was one.
    tar_split: Path | None = None
    #: Mode of the layer's root as the differ set it; None lets the driver choose.
    root_dir_mode: int | None = None
    metadata: str = ""
    big_data: dict[str, bytes] = recordclass.field(factory=dict)

    @classmethod
    def measured(cls, target: Path, report: IngestReport, tar_split: Path | None) -> StagedLayer:
        """What a differ that read a stream (``extract_stream``) hands back."""
        return cls(target=target, size=report.uncompressed_size, uids=list(report.uids),
                   gids=list(report.gids), uncompressed_digest=report.uncompressed_digest,
                   compressed_digest=report.compressed_digest,
                   compressed_size=report.compressed_size, compression=report.compression,
                   tar_split=tar_split)

    def report(self) -> IngestReport:
        """The part of this output a layer record takes (``record_report``)."""
        return IngestReport(self.compressed_digest, self.compressed_size,
                            self.uncompressed_digest, self.size, self.compression,
                            list(self.uids), list(self.gids))


class Differ(Protocol):
    """Fills a staging directory (Go ``Differ``)."""

    def apply_diff(self, dest: Path, scratch: Path, options: ApplyOptions) -> StagedLayer:
        """Write the layer's content into ``dest``; ``scratch`` (dest's parent, private to this
        staging) may hold side files such as the tar-split. ``options`` are the driver's
        (whiteout format, ID maps, force mask)."""


class StagingDriver(abc.ABC):
    """Optional driver capability: prepare a layer's content apart, then move it in."""

    @abc.abstractmethod
    def prepare_staged(self, differ: Differ, opts: ApplyDiffOpts) -> StagedLayer:
        """Make a locked staging directory and let ``differ`` fill it."""

    @abc.abstractmethod
    def apply_staged(self, id: str, parent: str | None, staged: StagedLayer) -> None:
        """Make ``staged``'s content the content of layer ``id``, in one rename."""

    @abc.abstractmethod
    def cleanup_staged(self, staged: StagedLayer) -> None:
        """Unlock and remove ``staged``'s staging directory (whatever state it is in)."""


class TarDiffer:
    """A differ applying a (possibly compressed) tar stream, recording what ``put_layer`` would."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream

    def apply_diff(self, dest: Path, scratch: Path, options: ApplyOptions) -> StagedLayer:
        from cs_core.archive.apply import apply_tar
        from cs_core.archive.ingest import extract_stream

        ts_path = scratch / TAR_SPLIT_FILE
        with open(os.open(ts_path, atomic.WRITE_FLAGS | os.O_TRUNC, 0o600), "wb") as ts_file:
            report = extract_stream(self.stream, ts_file, lambda plain, writer: apply_tar(
                dest, plain, options, tar_split=writer))
        return StagedLayer.measured(dest, report, ts_path)


# -- unlocked imports: a whole layer tree staged apart ------------------------------------------


@recordclass.define
class StagedTree:
    """A layer's future tree (its parent's files plus a diff) in a locked staging directory.

    Nothing in the store refers to it, so it is filled with no store lock held; only the
    move into a layer (``TreeStager.commit_staged_tree``) runs under the layer lock.
    """

    layer_dir: Path  #: ``<staging>/<random>/``, holding the lock and side files
    content: Path  #: the tree that becomes the layer (``layer_dir/dir``)
    lock: StagingLock


class TreeStager(abc.ABC):
    """Optional driver capability (ours, not Go's): build a new layer's tree with no lock held.

    Go's store holds the layer lock for a whole ``PutLayer``, so one big import stops every
    other writer; a driver with this capability lets the store extract first and only take
    the lock to move the finished tree in. Drivers without it keep the locked path.
    """

    @abc.abstractmethod
    def stage_tree(self, parent: str | None, opts: CreateOpts) -> StagedTree:
        """A locked staging directory whose content is what ``create`` would make."""

    @abc.abstractmethod
    def apply_staged_diff(self, staged: StagedTree, stream: BinaryIO,
                          opts: ApplyDiffOpts) -> ApplyResult:
        """Extract ``stream`` into the staged tree as ``apply_diff`` would into the layer."""

    @abc.abstractmethod
    def commit_staged_tree(self, id: str, parent: str | None, staged: StagedTree,
                           opts: CreateOpts, writeable: bool) -> None:
        """Make the staged tree layer ``id`` (no such layer exists yet) and release it."""

    def discard_staged_tree(self, staged: StagedTree) -> None:
        """Remove a staged tree that will not become a layer (whatever state it is in)."""
        if os.path.lexists(staged.layer_dir):
            remove_staging_dir(staged.layer_dir, staged.lock)
        else:
            staged.lock.unlock_and_delete()


def stage_plain_tree(base: Path, root_mode: int, root_owner: tuple[int, int],
                     copy_parent: Callable[[Path], None] | None = None) -> StagedTree:
    """A staged tree that is a plain directory: empty, or made by ``copy_parent`` (which
    creates the directory it is given, e.g. a copy of the parent layer's tree)."""
    layer_dir, lock = new_staging_dir(base, root_mode)
    staged = StagedTree(layer_dir, layer_dir / CONTENT_DIR, lock)
    try:
        if copy_parent is not None:
            os.rmdir(staged.content)
            copy_parent(staged.content)
        else:
            os.chown(staged.content, *root_owner)
    except BaseException:
        remove_staging_dir(layer_dir, lock)
        raise
    return staged


def move_staged_tree(staged: StagedTree, target: Path) -> None:
    """Rename the staged content to ``target`` (which must not exist), durably, and release."""
    if os.path.lexists(target):
        raise FileExistsError(errno.EEXIST, "file exists", str(target))
    os.rename(staged.content, target)
    # The rename must reach the disk before the record naming the layer does.
    atomic.fsync_dir(target.parent)
    remove_staging_dir(staged.layer_dir, staged.lock)


# -- staging directories and their locks ---------------------------------------------------------

_held: dict[str, StagingLock] = {}
_held_guard = threading.Lock()


class StagingLock:
    """An exclusive lock on a staging directory's ``staging.lock`` (Go ``StagingLockFile``).

    POSIX locks do not exclude the process that holds them, so the locks this process holds
    are also kept in a table: pruning in the same process must not take its own directories.
    """

    def __init__(self, path: str, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def try_lock(cls, path: str | os.PathLike[str]) -> StagingLock | None:
        """Lock ``path`` (creating it) without waiting; None if someone holds it."""
        key = os.path.abspath(path)
        with _held_guard:
            if key in _held:
                return None
            fd = os.open(key, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                return None
            lock = _held[key] = cls(key, fd)
            return lock

    @property
    def fd(self) -> int:
        assert self._fd is not None, "staging lock already released"
        return self._fd

    def release(self) -> None:
        """Drop the lock without touching the file (which may no longer be ours)."""
        with _held_guard:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
                _held.pop(self.path, None)

    def unlock_and_delete(self) -> None:
        """Remove the lock file, then release the lock (never the other way round: a pruner
        could otherwise lock the file and delete the directory while we still use it)."""
        with _held_guard:
            if self._fd is None:
                return
            try:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.path)
            finally:
                os.close(self._fd)
                self._fd = None
                _held.pop(self.path, None)


def new_staging_dir(base: Path, content_mode: int) -> tuple[Path, StagingLock]:
    """Create ``<base>/<random>/`` with its lock held and an empty ``dir/`` for the content.

    A pruner (ours or Go's) treats a directory whose lock nobody holds as stale, and ours has
    no lock for an instant after it appears; so when a pruner wins that race we start over
    with a fresh name, as Go's ``CreateAndLock`` retries.
    """
    base.mkdir(mode=0o700, parents=True, exist_ok=True)
    for _ in range(_MAX_TRIES):
        layer_dir = atomic.make_temp_dir(base)
        lock = _lock_fresh(layer_dir / LOCK_FILE)
        if lock is None:
            continue  # taken for stale: the pruner removes it
        content = layer_dir / CONTENT_DIR
        try:
            os.mkdir(content, content_mode)
            os.chmod(content, content_mode)  # mkdir is filtered by the umask
        except FileNotFoundError:
            lock.release()
            continue
        except BaseException:
            with contextlib.suppress(OSError):
                remove_tree(layer_dir)
            lock.unlock_and_delete()
            raise
        return layer_dir, lock
    raise OSError(f"failed to allocate a staging directory in {base} after {_MAX_TRIES} attempts")


def _lock_fresh(path: Path) -> StagingLock | None:
    """Lock a new staging directory's lock file, or None if a pruner got there first."""
    try:
        lock = StagingLock.try_lock(path)
    except FileNotFoundError:
        return None  # the directory is already gone
    if lock is None:
        return None
    # Locked, but is it still the directory's lock file? A pruner that removed the directory
    # between our open and our lock leaves us holding an unlinked inode.
    held = os.fstat(lock.fd)
    try:
        current = os.stat(path)
    except FileNotFoundError:
        current = None
    if current is None or (current.st_dev, current.st_ino) != (held.st_dev, held.st_ino):
        lock.release()
        return None
    return lock


def prune_staging_dirs(base: Path, remove: Callable[[Path], None] = remove_tree) -> bool:
    """Remove (by ``remove``) staging directories nobody holds; return whether any (held
    ones) remain."""
    try:
        entries = list(os.scandir(base))
    except FileNotFoundError:
        return False
    remaining = False
    for entry in entries:
        path = Path(entry.path)
        if not entry.is_dir(follow_symlinks=False):
            with contextlib.suppress(OSError):
                os.unlink(path)
            continue
        try:
            # As Go: take the lock, creating the file if it is missing (a directory its owner
            # died in before locking); new_staging_dir retries if we win against a live setup.
            lock = StagingLock.try_lock(path / LOCK_FILE)
        except FileNotFoundError:
            continue  # removed meanwhile
        if lock is None:
            remaining = True
            continue
        try:
            remove(path)
        finally:
            lock.unlock_and_delete()
    return remaining


def remove_staging_dir(layer_dir: Path, lock: StagingLock | None) -> None:
    remove_tree(layer_dir)
    if lock is not None:
        lock.unlock_and_delete()


