"""Choosing the graph driver: explicit name, then what is on disk, then priority order.

Go's order, with one deliberate difference: Go never detects an existing *vfs* store (a vfs
root reopened without ``-s`` silently becomes overlay, facts §12.6). We treat every driver's
home directory as prior state, because silently switching drivers hides all of a user's data.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from cs_core.drivers.base import DriverConfig, GraphDriver
from cs_core.drivers.plugins import PluginRegistry
from cs_core.errors import DriverError, NotSupported, StorageError, Unsupported

DEFAULT_PRIORITY = ("overlay", "btrfs", "vfs")


def select_driver(
    registry: PluginRegistry, name: str, graph_root: Path,
    config_for: Callable[[str], DriverConfig], priority: Sequence[str] = (),
) -> GraphDriver:
    if name:
        cls = registry.driver_class(name)
        return _construct(cls, config_for(cls.name), graph_root, fatal=True)
    order = list(priority) or list(DEFAULT_PRIORITY)
    known = set(registry.plugins) | set(order)
    prior = sorted(n for n in known if (graph_root / n).is_dir())
    if len(prior) > 1:
        raise DriverError(
            f"{graph_root} contains several valid graphdrivers: {', '.join(prior)}; Please cleanup "
            "or explicitly choose storage driver (-s <DRIVER>)"
        )
    if prior:
        cls = registry.driver_class(prior[0])
        return _construct(cls, config_for(cls.name), graph_root, fatal=True)
    candidates = order + sorted(set(registry.plugins) - set(order))
    reasons = []
    for candidate in candidates:
        try:
            cls = registry.driver_class(candidate)
        except StorageError as exc:
            reasons.append(f"{candidate}: {exc}")
            continue
        try:
            return _construct(cls, config_for(cls.name), graph_root, fatal=False)
        except NotSupported as exc:
            reasons.append(f"{candidate}: {exc}")
    raise DriverError("no supported storage backend found (" + "; ".join(reasons) + ")")


def _construct(cls: type[GraphDriver], config: DriverConfig, graph_root: Path,
               *, fatal: bool) -> GraphDriver:
    try:
        cls.probe(config)
        return cls(config)
    except NotSupported as exc:
        if fatal and not exc.detail:
            raise Unsupported(f"failed to GetDriver graph {cls.name} {graph_root}: "
                              "driver not supported") from exc  # Go's words
        raise  # the driver's own reason, as Go reports it
