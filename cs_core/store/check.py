"""Store consistency check and repair (Go HEAD ``check.go``).

``check()`` walks every layer, image and container and reports what is damaged, keyed by ID,
with Go's error texts; ``repair()`` (cs_core.store.repair) removes damaged items (containers
only when asked) so that what remains is consistent. Read-only stores are examined but never modified.

The whole check runs under the store's locks (graph → layers → images → containers, Go's
order) so that what it sees is one consistent state and a concurrent writer cannot make a
half-written item look damaged. Repair runs afterwards through the store's operations,
which take their own locks.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import logging
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs

from cs_core.drivers.base import MountOpts
from cs_core.errors import (
    NotSupported,
    StorageError,
    UnsafeArchive,
)
from cs_core.model import Layer
from cs_core.records.layers import LayerStore
from cs_core.store.check_tree import Tree, compare, read_diff, scan
from cs_core.store.context import StoreContext

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


# -- check ------------------------------------------------------------------------------------


@contextlib.contextmanager
def _all_locks(ctx: StoreContext) -> Iterator[None]:
    with contextlib.ExitStack() as stack:
        stack.enter_context(ctx.using_driver())
        stack.enter_context(ctx.layer_store.writing())
        for ls in ctx.ro_layer_stores:
            stack.enter_context(ls.reading())
        for ist in ctx.image_stores():
            stack.enter_context(ist.reading())
        stack.enter_context(ctx.container_store.reading())
        yield


def check(ctx: StoreContext, options: CheckOptions | None = None) -> CheckReport:
    """Report every damaged layer, image and container (Go ``Store.Check``)."""
    options = options or CheckOptions.most()
    report = CheckReport()
    with _all_locks(ctx):
        referenced: dict[str, bool] = {}
        referenced_ro: dict[str, bool] = {}
        _check_layers(ctx, options, report, referenced, referenced_ro)
        examined_images = _check_images(ctx, options, report, referenced, referenced_ro)
        _check_containers(ctx, options, report, referenced, examined_images)
        max_age = options.layer_unreferenced_maximum_age
        if max_age is None:
            max_age = DEFAULT_MAX_AGE
        now = _dt.datetime.now(_dt.UTC)
        for layer in ctx.layer_store.records:
            if referenced.get(layer.id):
                continue
            created = layer.created
            if created.year <= 1 or created + max_age < now:
                _add(report.layers, layer.id, LayerUnreferenced(f"layer {layer.id}"))
        try:
            driver_layers = ctx.driver.list_layers()
        except NotSupported:
            driver_layers = []
        for i, layer_id in enumerate(driver_layers):
            if layer_id not in referenced and layer_id not in referenced_ro:
                _add(report.layers, layer_id, LayerUnaccounted(f"layer {layer_id}"))
            report.layer_order[layer_id] = i + 1
    return report


def _check_layers(ctx: StoreContext, options: CheckOptions, report: CheckReport,
                  referenced: dict[str, bool], referenced_ro: dict[str, bool]) -> None:
    ignore_chown = any("ignore_chown_errors=true" in o for o in ctx.graph_options)
    force_mask = any("force_mask=" in o for o in ctx.graph_options)
    hard_links = ctx.options.pull_options.get("use_hard_links", "").lower() == "true"
    headers_by_layer: dict[str, list[tarfile.TarInfo]] = {}
    writable: list[Layer] = []
    for ls in ctx.layer_stores():
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
                _check_layer_data(ls, layer, desc, problems)
            if options.layer_digests and layer.uncompressed_digest:
                headers = _check_layer_digest(ctx, ls, layer, desc, problems)
                if headers is not None:
                    headers_by_layer[lid] = headers
        if rw and options.layer_mountable:
            for layer in mine:
                _check_mount(ctx, layer, options, report, headers_by_layer,
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


def _check_layer_data(ls: LayerStore, layer: Layer, desc: str, problems: Problems) -> None:
    lid = layer.id
    for key in layer.big_data_names:
        try:
            ls.read_big_data(lid, key)
        except FileNotFoundError:
            _add(problems, lid, LayerDataMissing(f'{desc}layer {lid}: data item "{key}"'))
        except OSError as exc:
            _add(problems, lid, CheckFailed(f'{desc}layer {lid}: data item "{key}"', exc))


def _check_layer_digest(ctx: StoreContext, ls: LayerStore, layer: Layer, desc: str,
                        problems: Problems) -> list[tarfile.TarInfo] | None:
    """The headers of the layer's diff if it matches its recorded digest and size."""
    lid = layer.id
    algorithm, _, hexpart = layer.uncompressed_digest.partition(":")
    if algorithm not in ("sha256", "sha384", "sha512") or not hexpart:
        _add(problems, lid, CheckFailed(
            f"{desc}layer {lid}", ValueError("invalid checksum digest format")))
        return None
    try:
        digest, size, headers = read_diff(ctx, ls, layer, algorithm)
    except (OSError, StorageError, tarfile.TarError, EOFError, ValueError) as exc:
        _add(problems, lid, CheckFailed(f"{desc}layer {lid}", exc))
        return None
    if digest != layer.uncompressed_digest:
        _add(problems, lid, LayerIncorrectContentDigest(f"{desc}layer {lid}"))
        return None
    if layer.uncompressed_size not in (-1, None) and size != layer.uncompressed_size:
        _add(problems, lid, LayerIncorrectContentSize(
            f"{desc}layer {lid}: read {size} bytes instead of "
            f"{layer.uncompressed_size} bytes"))
        return None
    return headers


def _check_mount(ctx: StoreContext, layer: Layer, options: CheckOptions, report: CheckReport,
                 headers_by_layer: dict[str, list[tarfile.TarInfo]], *, owners: bool,
                 perms: bool, times: bool) -> None:
    lid = layer.id
    driver = ctx.driver
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
        tree = Tree()
        for headers in chain:
            tree.apply(headers)
        try:
            actual = scan(root, layer.uid_map, layer.gid_map)
        except OSError as exc:
            _add(report.layers, lid, CheckFailed(f"scanning contents of layer {lid}", exc))
            return
        for diff in compare(tree.entries, actual, owners=owners, perms=perms, times=times):
            _add(report.layers, lid, LayerContentModified(f"layer {lid}: {diff}"))
    finally:
        if not already:
            try:
                driver.put(lid)
            except (OSError, StorageError) as exc:
                _add(report.layers, lid, CheckFailed(f"layer {lid}", exc))


def _check_images(ctx: StoreContext, options: CheckOptions, report: CheckReport,
                  referenced: dict[str, bool], referenced_ro: dict[str, bool]) -> set[str]:
    examined: set[str] = set()
    for ist in ctx.image_stores():
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


def _check_containers(ctx: StoreContext, options: CheckOptions, report: CheckReport,
                      referenced: dict[str, bool], examined_images: set[str]) -> None:
    cs = ctx.container_store
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
