"""Store consistency check and repair (Go HEAD ``check.go``).

``check()`` walks every layer, image and container and reports what is damaged, keyed by ID,
with Go's error texts; ``repair()`` removes damaged items (containers only when asked) so that
what remains is consistent. Read-only stores are examined but never modified.

The whole check runs under the store's locks (graph → layers → images → containers, Go's
order) so that what it sees is one consistent state and a concurrent writer cannot make a
half-written item look damaged. Repair runs afterwards through the public Store methods,
which take their own locks.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import gzip
import hashlib
import logging
import os
import stat
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from cs_core import walk
from cs_core.drivers.base import MountOpts
from cs_core.errors import (
    ContainerUnknown,
    ImageUnknown,
    LayerUnknown,
    NotAContainer,
    NotALayer,
    NotAnImage,
    NotSupported,
    StorageError,
    UnsafeArchive,
)
from cs_core.model import IDMap, Layer

if TYPE_CHECKING:
    from cs_core.records.layers import LayerStore
    from cs_core.store import Store

log = logging.getLogger(__name__)

DEFAULT_MAX_AGE = _dt.timedelta(hours=24)


# -- errors (Go types/errors.go texts) ---------------------------------------------------------


class CheckError(StorageError):
    """One problem found by ``check``; ``str()`` is Go's full wrapped message."""

    separator = ": "

    def __str__(self) -> str:
        if self.detail:
            return f"{self.detail}{self.separator}{self.message}"
        return self.message


class LayerUnaccounted(CheckError):
    message = "layer in lower level storage driver not accounted for"


class LayerUnreferenced(CheckError):
    message = "layer not referenced by any images or containers"


class LayerIncorrectContentDigest(CheckError):
    message = "layer content incorrect digest"


class LayerIncorrectContentSize(CheckError):
    message = "layer content incorrect size"


class LayerContentModified(CheckError):
    message = "layer content modified"
    separator = ", "


class LayerDataMissing(CheckError):
    message = "layer data item is missing"


class LayerMissing(CheckError):
    message = "layer is missing"


class ImageLayerMissing(CheckError):
    message = "image layer is missing"


class ImageDataMissing(CheckError):
    message = "image data item is missing"


class ImageDataIncorrectSize(CheckError):
    message = "image data item has incorrect size"


class ContainerImageMissing(CheckError):
    message = "image missing"


class ContainerDataMissing(CheckError):
    message = "container data item is missing"


class ContainerDataIncorrectSize(CheckError):
    message = "container data item has incorrect size"


class CheckFailed(CheckError):
    """Any other failure met while checking an item (mount error, unreadable tar, ...)."""

    def __init__(self, context: str, cause: BaseException) -> None:
        self.cause = cause
        super().__init__(context)

    def __str__(self) -> str:
        return f"{self.detail}: {_describe(self.cause)}"


def _describe(exc: BaseException) -> str:
    if isinstance(exc, UnsafeArchive) and exc.detail:
        return exc.detail  # e.g. Go's bare `file integrity checksum failed for "bin/sh"`
    if isinstance(exc, OSError) and exc.strerror:
        where = f" {exc.filename}" if exc.filename else ""
        return f"{exc.strerror.lower()}{':' if where else ''}{where}".strip()
    return str(exc)


# -- options and report -----------------------------------------------------------------------


@attrs.define
class CheckOptions:
    """Which checks to run (Go ``CheckOptions``)."""

    layer_unreferenced_maximum_age: _dt.timedelta | None = None
    layer_digests: bool = False
    layer_mountable: bool = False
    layer_contents: bool = False
    layer_data: bool = False
    image_data: bool = False
    container_data: bool = False

    @classmethod
    def most(cls) -> CheckOptions:
        """Everything but the (slow) content comparison: the CLI's ``--quick``."""
        return cls(layer_digests=True, layer_mountable=True, layer_data=True,
                   image_data=True, container_data=True)

    @classmethod
    def everything(cls) -> CheckOptions:
        return cls(layer_digests=True, layer_mountable=True, layer_contents=True,
                   layer_data=True, image_data=True, container_data=True)


@attrs.define
class RepairOptions:
    remove_containers: bool = True


Problems = dict[str, list[CheckError]]


@attrs.define
class CheckReport:
    """Damaged items by ID; an empty report means the store is consistent."""

    layers: Problems = attrs.field(factory=dict)
    ro_layers: Problems = attrs.field(factory=dict)
    images: Problems = attrs.field(factory=dict)
    ro_images: Problems = attrs.field(factory=dict)
    containers: Problems = attrs.field(factory=dict)
    layer_parents: dict[str, str] = attrs.field(factory=dict)
    layer_order: dict[str, int] = attrs.field(factory=dict)

    def empty(self) -> bool:
        return not (self.layers or self.ro_layers or self.images or self.ro_images
                    or self.containers)

    def sections(self) -> list[tuple[str, Problems]]:
        """(prefix, problems) in the order the Go CLI prints them."""
        return [("layer", self.layers), ("read-only layer", self.ro_layers),
                ("image", self.images), ("read-only image", self.ro_images),
                ("container", self.containers)]

    def to_go_json(self) -> dict[str, Any]:
        """Go's JSON encoding of CheckReport: error values have no exported fields → ``{}``."""
        def enc(p: Problems) -> dict[str, list[dict[str, Any]]]:
            return {k: [{} for _ in v] for k, v in sorted(p.items())}

        return {"Layers": enc(self.layers), "ROLayers": enc(self.ro_layers),
                "Images": enc(self.images), "ROImages": enc(self.ro_images),
                "Containers": enc(self.containers)}

    def lines(self) -> list[str]:
        out = []
        for prefix, problems in self.sections():
            for item, errs in problems.items():
                if errs:
                    out.append(f"{prefix} {item}:")
                out.extend(f" {e}" for e in errs)
        return out


def _add(problems: Problems, key: str, error: CheckError) -> None:
    problems.setdefault(key, []).append(error)


# -- tar headers of a layer's diff --------------------------------------------------------------


@attrs.define
class _Entry:
    kind: str  # "reg", "dir", "sym", "chr", "blk", "fifo", "sock"
    uid: int
    gid: int
    mode: int  # permission bits only
    size: int
    mtime: int
    implied: bool = False  # created only because a child needed it: attributes unknown


def _clean(name: str) -> str:
    parts = [p for p in name.split("/") if p and p != "."]
    return "/" + "/".join(parts)


def _tar_kind(member: tarfile.TarInfo) -> str:
    if member.isdir():
        return "dir"
    if member.issym():
        return "sym"
    if member.ischr():
        return "chr"
    if member.isblk():
        return "blk"
    if member.isfifo():
        return "fifo"
    return "reg"


class _Tree:
    """The file tree a sequence of layer diffs produces (Go ``checkDirectory``)."""

    def __init__(self) -> None:
        self.entries: dict[str, _Entry] = {"/": _Entry("dir", 0, 0, 0o755, 0, 0, implied=True)}

    def _remove_subtree(self, path: str, keep_self: bool = False) -> None:
        prefix = path.rstrip("/") + "/"
        for key in [k for k in self.entries if k.startswith(prefix)]:
            del self.entries[key]
        if not keep_self:
            self.entries.pop(path, None)

    def _ensure_parents(self, path: str) -> None:
        parent = os.path.dirname(path)
        while parent != "/" and parent not in self.entries:
            self.entries[parent] = _Entry("dir", 0, 0, 0o755, 0, 0, implied=True)
            parent = os.path.dirname(parent)

    def apply(self, headers: list[tarfile.TarInfo]) -> None:
        for member in headers:
            path = _clean(member.name)
            if path == "/":
                continue
            base = os.path.basename(path)
            directory = os.path.dirname(path)
            if base == ".wh..wh..opq":
                self._remove_subtree(directory, keep_self=True)
                continue
            if base.startswith(".wh."):
                self._remove_subtree(os.path.join(directory, base[4:]))
                continue
            self._ensure_parents(path)
            if member.islnk():
                target = self.entries.get(_clean(member.linkname))
                if target is not None:
                    self.entries[path] = attrs.evolve(target)
                continue
            existing = self.entries.get(path)
            if existing is not None and not (existing.kind == "dir" and member.isdir()):
                self._remove_subtree(path)
            self.entries[path] = _Entry(
                _tar_kind(member), member.uid, member.gid, member.mode & 0o777,
                member.size if member.isreg() else 0, int(member.mtime),
            )


def _scan(root: Path, uid_map: list[IDMap], gid_map: list[IDMap]) -> dict[str, _Entry]:
    """The mounted tree, with owners mapped back into the layer's ID namespace."""
    found: dict[str, _Entry] = {}
    for d in walk.walk(root):  # iterative, fd-relative: no depth or path-length limit
        prefix = "/" + d.rel + "/" if d.rel else "/"
        for entry in d.entries:
            st = entry.stat(follow_symlinks=False)
            mode = st.st_mode
            kind = ("dir" if stat.S_ISDIR(mode) else "sym" if stat.S_ISLNK(mode)
                    else "chr" if stat.S_ISCHR(mode) else "blk" if stat.S_ISBLK(mode)
                    else "fifo" if stat.S_ISFIFO(mode) else "sock" if stat.S_ISSOCK(mode)
                    else "reg")
            rel = prefix + entry.name
            found[rel] = _Entry(kind, _to_container(st.st_uid, uid_map),
                                _to_container(st.st_gid, gid_map), mode & 0o777,
                                st.st_size if kind == "reg" else 0, int(st.st_mtime))
    return found


def _to_container(host_id: int, mapping: list[IDMap]) -> int:
    if not mapping:
        return host_id
    for m in mapping:
        if m.host_id <= host_id < m.host_id + m.size:
            return m.container_id + host_id - m.host_id
    return host_id


def _compare(expected: dict[str, _Entry], actual: dict[str, _Entry], *, owners: bool,
             perms: bool, times: bool) -> list[str]:
    diffs: list[str] = []
    for path in sorted(set(expected) | set(actual)):
        if path == "/":
            continue
        want, have = expected.get(path), actual.get(path)
        if have is None:
            assert want is not None
            diffs.append(f"-{path}{'/' if want.kind == 'dir' else ''}")
            continue
        if want is None:
            diffs.append(f"+{path}{'/' if have.kind == 'dir' else ''}")
            continue
        if want.implied:
            continue
        parts: list[str] = []
        if perms and want.kind != have.kind:
            parts.append(f"filetype:{want.kind}￫{have.kind}")
        if owners and want.uid != have.uid:
            parts.append(f"uid:{want.uid}￫{have.uid}")
        if owners and want.gid != have.gid:
            parts.append(f"gid:{want.gid}￫{have.gid}")
        if want.kind == "reg" and have.kind == "reg" and want.size != have.size:
            parts.append(f"size:{want.size}￫{have.size}")
        if perms and want.kind != "sym" and want.mode != have.mode:
            parts.append(f"mode:{want.mode:04o}￫{have.mode:04o}")
        # Directory times change whenever a later layer adds to them; only files are compared.
        if times and want.kind not in ("dir", "sym") and want.mtime != have.mtime:
            parts.append(f"mtime:0x{want.mtime:x}￫0x{have.mtime:x}")
        if parts:
            diffs.append(f"{path}({','.join(parts)})")
    return diffs


class _DigestingPipe:
    """Writer side of a pipe that digests and counts what passes through it."""

    def __init__(self, fd: int, algorithm: str) -> None:
        self._file = os.fdopen(fd, "wb")
        self.hash = hashlib.new(algorithm)
        self.count = 0

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        self.count += len(data)
        self._file.write(data)
        return len(data)

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        with contextlib.suppress(BrokenPipeError):
            self._file.close()


def _read_diff(store: Store, ls: LayerStore, layer: Layer,
               algorithm: str) -> tuple[str, int, list[tarfile.TarInfo]]:
    """Reassemble a layer's diff from tar-split; return (digest, size, headers).

    The reassembly (which needs the driver, under our locks) writes into a pipe that a
    helper thread parses as a tar stream, so memory stays flat for any layer size.
    """
    from cs_core.archive.tarsplit import reassemble

    ts_path = ls.tar_split_path(layer.id)
    headers: list[tarfile.TarInfo] = []
    failure: list[BaseException] = []
    rfd, wfd = os.pipe()

    def parse() -> None:
        with os.fdopen(rfd, "rb") as source:
            try:
                with tarfile.open(fileobj=source, mode="r|") as tar:
                    for member in tar:
                        headers.append(member)
            except (tarfile.TarError, OSError, EOFError) as exc:
                failure.append(exc)
            while source.read(1 << 16):  # drain the trailer (or the rest after an error)
                pass

    reader = threading.Thread(target=parse, daemon=True)
    reader.start()
    sink = _DigestingPipe(wfd, algorithm)
    try:
        if not ts_path.exists():
            # No tar-split (e.g. layers written by a tool that keeps none): use the driver's diff.
            parent = ls.lookup(layer.parent) if layer.parent else None
            stream = store.driver.diff(layer.id, layer.parent or None, layer.uid_map, layer.gid_map,
                                       parent.id_maps if parent is not None else None)
            try:
                while chunk := stream.read(1 << 20):
                    sink.write(chunk)
            finally:
                stream.close()
        else:
            getter = store.driver.diff_getter(layer.id)
            try:
                with gzip.open(ts_path, "rb") as ts:
                    reassemble(ts, getter.open, sink)  # type: ignore[arg-type]
            finally:
                getter.close()
    finally:
        sink.close()
        reader.join()
    if failure:
        raise failure[0]
    return f"{algorithm}:{sink.hash.hexdigest()}", sink.count, headers


# -- check ------------------------------------------------------------------------------------


@contextlib.contextmanager
def _all_locks(store: Store) -> Iterator[None]:
    with contextlib.ExitStack() as stack:
        stack.enter_context(store._using_driver())
        stack.enter_context(store.layer_store.writing())
        for ls in store.ro_layer_stores:
            stack.enter_context(ls.reading())
        for ist in store._image_stores():
            stack.enter_context(ist.reading())
        stack.enter_context(store.container_store.reading())
        yield


def check(store: Store, options: CheckOptions | None = None) -> CheckReport:
    """Report every damaged layer, image and container (Go ``Store.Check``)."""
    options = options or CheckOptions.most()
    report = CheckReport()
    with _all_locks(store):
        referenced: dict[str, bool] = {}
        referenced_ro: dict[str, bool] = {}
        _check_layers(store, options, report, referenced, referenced_ro)
        examined_images = _check_images(store, options, report, referenced, referenced_ro)
        _check_containers(store, options, report, referenced, examined_images)
        max_age = options.layer_unreferenced_maximum_age
        if max_age is None:
            max_age = DEFAULT_MAX_AGE
        now = _dt.datetime.now(_dt.UTC)
        for layer in store.layer_store.records:
            if referenced.get(layer.id):
                continue
            created = layer.created
            if created.year <= 1 or created + max_age < now:
                _add(report.layers, layer.id, LayerUnreferenced(f"layer {layer.id}"))
        try:
            driver_layers = store.driver.list_layers()
        except NotSupported:
            driver_layers = []
        for i, layer_id in enumerate(driver_layers):
            if layer_id not in referenced and layer_id not in referenced_ro:
                _add(report.layers, layer_id, LayerUnaccounted(f"layer {layer_id}"))
            report.layer_order[layer_id] = i + 1
    return report


def _check_layers(store: Store, options: CheckOptions, report: CheckReport,
                  referenced: dict[str, bool], referenced_ro: dict[str, bool]) -> None:
    ignore_chown = any("ignore_chown_errors=true" in o for o in store.graph_options)
    force_mask = any("force_mask=" in o for o in store.graph_options)
    hard_links = store.options.pull_options.get("use_hard_links", "").lower() == "true"
    headers_by_layer: dict[str, list[tarfile.TarInfo]] = {}
    writable: list[Layer] = []
    for ls in store._layer_stores():
        rw = not ls.read_only
        desc = "" if rw else "read-only "
        problems = report.layers if rw else report.ro_layers
        mine: list[Layer] = []
        for layer in ls.records:
            lid = layer.id
            if lid in referenced or lid in referenced_ro:
                continue
            mine.append(layer)
            report.layer_parents[lid] = layer.parent
            (referenced if rw else referenced_ro)[lid] = False
            if options.layer_data:
                for key in layer.big_data_names:
                    try:
                        ls.read_big_data(lid, key)
                    except FileNotFoundError:
                        _add(problems, lid, LayerDataMissing(f'{desc}layer {lid}: data item "{key}"'))
                    except OSError as exc:
                        _add(problems, lid, CheckFailed(f'{desc}layer {lid}: data item "{key}"', exc))
            if options.layer_digests and layer.uncompressed_digest:
                algorithm, _, hexpart = layer.uncompressed_digest.partition(":")
                if algorithm not in ("sha256", "sha384", "sha512") or not hexpart:
                    _add(problems, lid, CheckFailed(
                        f"{desc}layer {lid}", ValueError("invalid checksum digest format")))
                    continue
                try:
                    digest, size, headers = _read_diff(store, ls, layer, algorithm)
                except (OSError, StorageError, tarfile.TarError, EOFError, ValueError) as exc:
                    _add(problems, lid, CheckFailed(f"{desc}layer {lid}", exc))
                    continue
                if digest != layer.uncompressed_digest:
                    _add(problems, lid, LayerIncorrectContentDigest(f"{desc}layer {lid}"))
                    continue
                if layer.uncompressed_size not in (-1, None) and size != layer.uncompressed_size:
                    _add(problems, lid, LayerIncorrectContentSize(
                        f"{desc}layer {lid}: read {size} bytes instead of "
                        f"{layer.uncompressed_size} bytes"))
                    continue
                headers_by_layer[lid] = headers
        if rw and options.layer_mountable:
            for layer in mine:
                _check_mount(store, layer, options, report, headers_by_layer,
                             owners=not ignore_chown and not force_mask, perms=not force_mask,
                             times=not hard_links)
        if rw:
            writable = mine
    # Parents are looked up in every store, read-only ones included. (HEAD looks before it
    # has read the read-only stores, so it reports every container made from an additional
    # store's image as damaged, and check -r then tries to delete its layer.)
    known = set(referenced) | set(referenced_ro)
    for layer in writable:
        if layer.parent and layer.parent not in known:
            _add(report.layers, layer.id, LayerMissing(f"layer {layer.parent}"))


def _check_mount(store: Store, layer: Layer, options: CheckOptions, report: CheckReport,
                 headers_by_layer: dict[str, list[tarfile.TarInfo]], *, owners: bool,
                 perms: bool, times: bool) -> None:
    lid = layer.id
    driver = store.driver
    already = layer.mount_count > 0 and bool(layer.mount_point) and \
        driver.is_mounted(lid, layer.mount_point)
    try:
        root = Path(layer.mount_point) if already else driver.get(
            lid, MountOpts(mount_label=layer.mount_label, options=("ro",)))
    except (OSError, StorageError) as exc:
        _add(report.layers, lid, CheckFailed(f"layer {lid}", exc))
        return
    try:
        if not (options.layer_digests and options.layer_contents and layer.uncompressed_digest):
            return
        chain: list[list[tarfile.TarInfo]] = []
        current = lid
        while current:
            headers = headers_by_layer.get(current)
            if headers is None:
                return  # not every change that built this tree is known: not an image layer
            chain.insert(0, headers)
            current = report.layer_parents.get(current, "")
        tree = _Tree()
        for headers in chain:
            tree.apply(headers)
        try:
            actual = _scan(root, layer.uid_map, layer.gid_map)
        except OSError as exc:
            _add(report.layers, lid, CheckFailed(f"scanning contents of layer {lid}", exc))
            return
        for diff in _compare(tree.entries, actual, owners=owners, perms=perms, times=times):
            _add(report.layers, lid, LayerContentModified(f"layer {lid}: {diff}"))
    finally:
        if not already:
            try:
                driver.put(lid)
            except (OSError, StorageError) as exc:
                _add(report.layers, lid, CheckFailed(f"layer {lid}", exc))


def _check_images(store: Store, options: CheckOptions, report: CheckReport,
                  referenced: dict[str, bool], referenced_ro: dict[str, bool]) -> set[str]:
    examined: set[str] = set()
    for ist in store._image_stores():
        rw = not ist.read_only
        desc = "" if rw else "read-only "
        problems = report.images if rw else report.ro_images
        for image in ist.records:
            iid = image.id
            if iid in examined:
                continue
            examined.add(iid)
            if options.image_data:
                for key in image.big_data_names:
                    where = f'{desc}image {iid}: data item "{key}"'
                    try:
                        data = ist.read_big_data(iid, key)
                    except FileNotFoundError:
                        _add(problems, iid, ImageDataMissing(where))
                        continue
                    except OSError as exc:
                        _add(problems, iid, CheckFailed(where, exc))
                        continue
                    if len(data) != image.big_data_sizes.get(key, 0):
                        _add(problems, iid, ImageDataIncorrectSize(where))
            seen_tops: set[str] = set()
            for top in [image.top_layer, *image.mapped_top_layers]:
                if not top or top in seen_tops:
                    continue
                seen_tops.add(top)
                current = top
                visited: set[str] = set()
                while current and current not in visited:
                    visited.add(current)
                    if current in referenced:
                        referenced[current] = True
                    elif current in referenced_ro:
                        referenced_ro[current] = True
                    else:
                        _add(problems, iid, ImageLayerMissing(f"{desc}image {iid}: layer {current}"))
                    for source in (report.layers, report.ro_layers):
                        if source.get(current):
                            problems.setdefault(iid, []).extend(source[current])
                    current = report.layer_parents.get(current, "")
    return examined


def _check_containers(store: Store, options: CheckOptions, report: CheckReport,
                      referenced: dict[str, bool], examined_images: set[str]) -> None:
    cs = store.container_store
    for container in cs.records:
        cid = container.id
        if options.container_data:
            for key in container.big_data_names:
                where = f'container {cid}: data item "{key}"'
                try:
                    data = cs.read_big_data(cid, key)
                except FileNotFoundError:
                    _add(report.containers, cid, ContainerDataMissing(where))
                    continue
                except OSError as exc:
                    _add(report.containers, cid, CheckFailed(where, exc))
                    continue
                if len(data) != container.big_data_sizes.get(key, 0):
                    _add(report.containers, cid, ContainerDataIncorrectSize(where))
        if container.image:
            if container.image not in examined_images:
                _add(report.containers, cid, ContainerImageMissing(f"image {container.image}"))
            for source in (report.images, report.ro_images):
                if source.get(container.image):
                    report.containers.setdefault(cid, []).extend(source[container.image])
        if container.layer:
            referenced[container.layer] = True


# -- repair -----------------------------------------------------------------------------------

_IGNORED_ON_REPAIR = (LayerUnknown, NotALayer, ImageUnknown, NotAnImage, ContainerUnknown,
                      NotAContainer, FileNotFoundError)


def repair(store: Store, report: CheckReport,
           options: RepairOptions | None = None) -> list[StorageError]:
    """Remove what ``report`` says is damaged, in Go's order; return what could not be removed.

    Read-only stores are left alone, and containers are removed only with
    ``remove_containers`` (their damage otherwise stays reported).
    """
    options = options or RepairOptions()
    errors: list[StorageError] = []
    if options.remove_containers:
        for cid in report.containers:
            try:
                store.delete_container(cid)
            except _IGNORED_ON_REPAIR:
                pass
            except (StorageError, OSError) as exc:
                errors.append(CheckFailed(f"deleting container {cid}", exc))
    deleted: set[str] = set()
    for iid in report.images:
        try:
            deleted.update(store.delete_image(iid, commit=True))
        except _IGNORED_ON_REPAIR:
            pass
        except (StorageError, OSError) as exc:
            errors.append(CheckFailed(f"deleting image {iid}", exc))

    def unaccounted(lid: str) -> bool:
        return any(isinstance(e, LayerUnaccounted) for e in report.layers.get(lid, []))

    def depth(lid: str) -> int:
        d, parent, seen = 0, report.layer_parents.get(lid, ""), {lid}
        while parent and parent not in seen:
            seen.add(parent)
            d += 1
            parent = report.layer_parents.get(parent, "")
        return d

    # Known layers first, children before parents; then the driver's leftovers in its order.
    order = sorted(report.layers, key=lambda lid: (
        unaccounted(lid), report.layer_order.get(lid, 0) if unaccounted(lid) else -depth(lid)))
    for lid in order:
        if lid in deleted:
            continue
        try:
            if unaccounted(lid):
                with store._using_driver() as driver:
                    driver.remove(lid)
            else:
                with contextlib.suppress(StorageError, OSError):
                    store.unmount(lid, force=True)
                store.delete_layer(lid)
        except _IGNORED_ON_REPAIR:
            pass
        except (StorageError, OSError) as exc:
            what = "storage layer" if unaccounted(lid) else "layer"
            errors.append(CheckFailed(f"deleting {what} {lid}", exc))
    return errors

