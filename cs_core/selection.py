"""Choosing the graph driver: explicit name, then what is on disk, then priority order.

Go's order, with one deliberate difference: Go never detects an existing *vfs* store (a vfs
root reopened without ``-s`` silently becomes overlay, facts §12.6). We treat every driver's
home directory as prior state, because silently switching drivers hides all of a user's data.

The core names no driver: the order comes from the driver classes (``GraphDriver.priority``,
``auto_select``) and from storage.conf's ``driver_priority``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from cs_core.drivers.base import DriverConfig, GraphDriver
from cs_core.drivers.plugins import PluginRegistry
from cs_core.errors import DriverError, NotSupported, StorageError, Unsupported


def select_driver(
    registry: PluginRegistry, name: str, graph_root: Path,
    config_for: Callable[[str], DriverConfig], priority: Sequence[str] = (),
) -> GraphDriver:
    if name:
        cls = registry.driver_class(name)
        return _construct(cls, config_for(cls.name), graph_root, fatal=True)
    prior = _prior_state(registry, graph_root, priority)
    if len(prior) > 1:
        raise DriverError(
            f"{graph_root} contains several valid graphdrivers: {', '.join(prior)}; Please cleanup "
            "or explicitly choose storage driver (-s <DRIVER>)"
        )
    if prior:
        cls = registry.driver_class(prior[0])
        return _construct(cls, config_for(cls.name), graph_root, fatal=True)
    candidates, reasons = candidate_order(registry, priority)
    for cls in candidates:
        try:
            return _construct(cls, config_for(cls.name), graph_root, fatal=False)
        except NotSupported as exc:
            reasons.append(f"{cls.name}: {exc}")
    raise DriverError("no supported storage backend found (" + "; ".join(reasons) + ")")


def _prior_state(registry: PluginRegistry, graph_root: Path, priority: Sequence[str]) -> list[str]:
    """Driver homes already under the graph root. Plugins are named like their drivers, so
    this loads no plugin: reopening a store imports only the driver it uses."""
    known = set(registry.plugins) | set(registry.known_drivers()) | set(priority)
    return sorted(n for n in known if (graph_root / n).is_dir())


def candidate_order(
    registry: PluginRegistry, priority: Sequence[str] = (),
) -> tuple[list[type[GraphDriver]], list[str]]:
    """Drivers to try when none is named or on disk, and why others cannot be tried.

    storage.conf's ``driver_priority`` comes first, as given (it may name a driver that opts
    out of automatic selection); then every other driver with ``auto_select``, by
    ``priority`` and name, as Go tries its priority list and then every registered driver.
    """
    reasons: list[str] = []
    chosen: list[type[GraphDriver]] = []
    for name in priority:
        try:
            cls = registry.driver_class(name)
        except StorageError as exc:
            reasons.append(f"{name}: {exc}")
            continue
        if cls not in chosen:
            chosen.append(cls)
    rest = sorted((c for c in registry.drivers().values() if c.auto_select and c not in chosen),
                  key=lambda c: (c.priority, c.name))
    reasons += [f"{p.name}: plugin failed to load: {p.error}"
                for p in registry.plugins.values() if p.error]
    return chosen + rest, reasons


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
