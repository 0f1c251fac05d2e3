"""Store repair (Go HEAD ``check.go``'s ``Repair``): remove what a check report found
damaged, through the store's own operations, which take their own locks."""

from __future__ import annotations

import contextlib

from cs_core.errors import (
    ContainerUnknown,
    ImageUnknown,
    LayerUnknown,
    NotAContainer,
    NotALayer,
    NotAnImage,
    StorageError,
)
from cs_core.store import containers, images, layers, mounts
from cs_core.store.check import CheckFailed, CheckReport, LayerUnaccounted, RepairOptions
from cs_core.store.context import StoreContext

_IGNORED_ON_REPAIR = (LayerUnknown, NotALayer, ImageUnknown, NotAnImage, ContainerUnknown,
                      NotAContainer, FileNotFoundError)


def repair(ctx: StoreContext, report: CheckReport,
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
                containers.delete_container(ctx, cid)
            except _IGNORED_ON_REPAIR:
                pass
            except (StorageError, OSError) as exc:
                errors.append(CheckFailed(f"deleting container {cid}", exc))
    deleted: set[str] = set()
    for iid in report.images:
        try:
            deleted.update(images.delete_image(ctx, iid, commit=True))
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
                with ctx.using_driver() as driver:
                    driver.remove(lid)
            else:
                with contextlib.suppress(StorageError, OSError):
                    mounts.unmount(ctx, lid, force=True)
                layers.delete_layer(ctx, lid)
        except _IGNORED_ON_REPAIR:
            pass
        except (StorageError, OSError) as exc:
            what = "storage layer" if unaccounted(lid) else "layer"
            errors.append(CheckFailed(f"deleting {what} {lid}", exc))
    return errors

