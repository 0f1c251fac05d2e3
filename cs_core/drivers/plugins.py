"""Plugin discovery and the graph-driver registry.

Entry points in the group ``cs_core`` are found without importing them; each is imported
only when needed, inside its own ``try``, so that one broken plugin never breaks the CLI
unless it provides the driver the user selected (then the error names the plugin).

Environment switches:

``CS_CORE_DISABLE_PLUGINS``
    Comma-separated entry-point names never to load.
``CS_CORE_PLUGINS``
    Comma-separated entry-point names; when set, only these are loaded.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from types import ModuleType
from typing import TYPE_CHECKING, Any

from cs_core import lazylog, recordclass
from cs_core.drivers import hookspecs
from cs_core.drivers.base import GraphDriver
from cs_core.drivers.entrypoints import EntryPointLike
from cs_core.drivers.entrypoints import entry_points as find_entry_points
from cs_core.drivers.markers import plain_args
from cs_core.errors import PluginError, Unsupported

if TYPE_CHECKING:
    import click
    import pluggy

    from cs_core.store import Store

ENTRY_POINT_GROUP = "cs_core"
ENV_DISABLE = "CS_CORE_DISABLE_PLUGINS"
ENV_ONLY = "CS_CORE_PLUGINS"


@recordclass.define
class PluginInfo:
    """What is known about one plugin (for ``containers-storage plugins``)."""

    name: str
    module: str
    distribution: str = ""
    version: str = ""
    loaded: bool = False
    error: str | None = None
    blocked: bool = False
    drivers: list[str] = recordclass.field(factory=list)


def _env_list(name: str) -> set[str] | None:
    value = os.environ.get(name)
    if value is None:
        return None
    return {item.strip() for item in value.split(",") if item.strip()}


#: Each hook's argument names, as pluggy reads them off the specifications.
_SPEC_ARGS = {name: plain_args(func) for name, func in vars(hookspecs).items()
              if hasattr(func, hookspecs.PROJECT + "_spec")}
_IMPL = hookspecs.PROJECT + "_impl"


def _plain_impls(module: ModuleType) -> dict[str, tuple[Any, tuple[str, ...]]] | None:
    """A plugin module's hook functions and their arguments, when calling them directly is
    exactly what pluggy would do (no options, known hook, accepted arguments); else None."""
    found: dict[str, tuple[Any, tuple[str, ...]]] = {}
    for name, func in vars(module).items():
        opts = getattr(func, _IMPL, None)
        if opts is None:
            continue
        spec, args = _SPEC_ARGS.get(name), plain_args(func)
        if not isinstance(opts, dict) or any(opts.values()) or spec is None or args is None or (
                not set(args) <= set(spec)):
            return None
        found[name] = (func, args)
    return found


class PluginRegistry:
    """Owns the name → driver-class table and, when a hook needs it, the pluggy manager.

    Plugins whose hooks are plain functions (the usual case) are called directly: pluggy, and
    the ``inspect`` it imports, cost a CLI process ~30M instructions. ``pm`` builds the manager
    on first use with every plugin imported so far, and from then on it calls every hook.
    """

    def __init__(self, entry_points: Iterable[EntryPointLike] | None = None) -> None:
        self._pm: pluggy.PluginManager | None = None
        self._direct: dict[str, tuple[ModuleType, dict[str, tuple[Any, tuple[str, ...]]]]] = {}
        self._drivers: dict[str, type[GraphDriver]] = {}
        self._driver_owner: dict[str, str] = {}
        self._entry_points: dict[str, EntryPointLike] = {}
        self.plugins: dict[str, PluginInfo] = {}
        if entry_points is None:
            entry_points = find_entry_points(ENTRY_POINT_GROUP)
        disabled = _env_list(ENV_DISABLE) or set()
        only = _env_list(ENV_ONLY)
        for ep in entry_points:
            if ep.name in self.plugins:
                continue  # first distribution on sys.path wins, as importlib resolves modules
            dist = getattr(ep, "dist", None)
            info = PluginInfo(
                name=ep.name,
                module=ep.value,
                distribution=dist.name if dist else "",
                version=dist.version if dist else "",
                blocked=ep.name in disabled or (only is not None and ep.name not in only),
            )
            self.plugins[ep.name] = info
            self._entry_points[ep.name] = ep

    @property
    def pm(self) -> pluggy.PluginManager:
        """pluggy's manager, holding every plugin imported so far."""
        if self._pm is None:
            import pluggy

            pm = pluggy.PluginManager(hookspecs.PROJECT)
            pm.add_hookspecs(hookspecs)
            for name, (module, _impls) in self._direct.items():
                pm.register(module, name)
            self._pm, self._direct = pm, {}
        return self._pm

    def _imported(self, name: str) -> Any:
        if self._pm is not None:
            return self._pm.get_plugin(name)
        found = self._direct.get(name)
        return found[0] if found else None

    def _forget(self, module: object, name: str) -> None:
        if self._pm is not None:
            self._pm.unregister(module, name)
        else:
            self._direct.pop(name, None)

    # -- loading -----------------------------------------------------------------------------

    def _import(self, name: str) -> ModuleType | None:
        """Import plugin ``name`` and register its hooks (not yet its drivers).

        Importing is cheap (entry-point modules are thin), so observer hooks can be offered to
        every plugin without importing every driver. Errors are recorded, not raised.
        """
        info = self.plugins[name]
        module = self._imported(name)
        if module is not None:
            return module  # type: ignore[no-any-return]
        if info.error or info.blocked or name not in self._entry_points:
            return None
        try:
            module = self._entry_points[name].load()
            if not isinstance(module, ModuleType):
                raise TypeError(f"entry point must name a module, not {module!r}")
            impls = _plain_impls(module) if self._pm is None else None
            if impls is not None:
                self._direct[name] = (module, impls)
                return module
            self.pm.register(module, name)
            try:
                self.pm.check_pending()
            except BaseException:
                self.pm.unregister(module, name)
                raise
        except Exception as exc:
            info.error = _describe(exc)
            return None
        return module

    def load(self, name: str) -> PluginInfo:
        """Import one plugin and let it register its drivers; errors are recorded, not raised."""
        info = self.plugins[name]
        if info.loaded:
            return info
        module = self._import(name)
        if module is None:
            return info
        try:
            self._register_drivers(module, name, info)
            info.loaded = True
        except Exception as exc:
            self._forget(module, name)
            info.error = _describe(exc)
        lazylog.apply_pending()  # a driver that imported logging itself logs as configured
        return info

    def load_all(self) -> None:
        for name in list(self.plugins):
            self.load(name)

    def import_all(self) -> None:
        """Import every allowed plugin's hooks, leaving driver registration for when needed."""
        for name in list(self.plugins):
            self._import(name)
        lazylog.apply_pending()

    def register_plugin(self, module: ModuleType | Any, name: str) -> None:
        """Register an already-imported plugin object (also used by tests and embedders)."""
        if self._imported(name) is not None:
            raise PluginError(f"plugin {name!r} is already registered")
        info = self.plugins.setdefault(name, PluginInfo(name=name, module=repr(module)))
        self.pm.register(module, name)
        try:
            self.pm.check_pending()
            self._register_drivers(module, name, info)
        except BaseException:
            self.pm.unregister(module, name)
            raise
        info.loaded = True

    def _register_drivers(self, module: object, name: str, info: PluginInfo) -> None:
        """Call ``cs_register_graph_drivers`` of this one plugin; undo it all if it fails."""
        caller = self._caller_of(module, name, "cs_register_graph_drivers")

        def register(cls: type[GraphDriver]) -> None:
            self._add_driver(cls, name)
            info.drivers.append(cls.name)

        try:
            caller(register=register)
        except BaseException:
            for driver, owner in list(self._driver_owner.items()):
                if owner == name:
                    del self._driver_owner[driver]
                    self._drivers.pop(driver, None)
            info.drivers.clear()
            raise

    def _add_driver(self, cls: Any, plugin: str) -> None:
        if not (isinstance(cls, type) and issubclass(cls, GraphDriver)):
            raise PluginError(f"plugin {plugin!r} registered {cls!r}, which is not a GraphDriver")
        name = getattr(cls, "name", None)
        if not isinstance(name, str) or not name:
            raise PluginError(f"plugin {plugin!r} registered {cls.__name__} without a name")
        for key in (name, *cls.aliases):
            if key in self._drivers:
                raise PluginError(
                    f"plugin {plugin!r} registers graph driver {key!r}, "
                    f"already registered by plugin {self._driver_owner[key]!r}"
                )
        for key in (name, *cls.aliases):
            self._drivers[key] = cls
            self._driver_owner[key] = plugin

    def _caller_of(self, module: object, name: str, hook: str) -> Callable[..., object]:
        """One plugin's implementation of ``hook``, called as pluggy calls it."""
        direct = self._direct.get(name) if self._pm is None else None
        if direct is None:
            others = [p for p in self.pm.get_plugins() if p is not module]
            return self.pm.subset_hook_caller(hook, others)
        func, args = direct[1].get(hook, (None, ()))

        def call(**kwargs: Any) -> object:
            return None if func is None else func(*[kwargs[a] for a in args])

        return call

    def implementers(self, hook: str) -> bool:
        """Whether a plugin imported so far implements ``hook`` (always asks pluggy once it runs)."""
        return self._pm is not None or any(hook in impls for _m, impls in self._direct.values())

    # -- lookup ------------------------------------------------------------------------------

    def driver_class(self, name: str) -> type[GraphDriver]:
        """The class for driver ``name``, loading only the plugins needed to find it."""
        if name not in self._drivers and name in self.plugins:
            self.load(name)
        if name not in self._drivers:
            self.load_all()
        if name in self._drivers:
            return self._drivers[name]
        info = self.plugins.get(name)
        if info is not None and info.error:
            raise PluginError(f"graph driver {name!r}: plugin {name!r} failed to load: {info.error}")
        if info is not None and info.blocked:
            raise Unsupported(f"graph driver {name!r} is disabled by {ENV_DISABLE}/{ENV_ONLY}")
        raise Unsupported(f"driver {name!r} not found (is its package installed?)")

    def known_drivers(self) -> list[str]:
        """Names and aliases of the drivers registered so far (loads nothing)."""
        return list(self._drivers)

    def drivers(self) -> dict[str, type[GraphDriver]]:
        """Every loadable driver, by name (loads every plugin)."""
        self.load_all()
        return {k: v for k, v in self._drivers.items() if k == v.name}

    @property
    def hooks(self) -> Hooks:
        """The hooks, called by name-checked methods rather than strings."""
        return Hooks(self)


class Hooks:
    """Typed calls of the hooks in :mod:`cs_core.drivers.hookspecs` (but driver registration,
    which the registry does per plugin)."""

    def __init__(self, registry: PluginRegistry) -> None:
        self._registry = registry

    def register_commands(self, cli: click.Group) -> None:
        self._registry.import_all()
        self._registry.pm.hook.cs_register_commands(cli=cli)

    def store_opened(self, store: Store) -> None:
        """Tell every plugin, whichever driver the store uses: observers provide none."""
        self._registry.import_all()
        if self._registry.implementers("cs_store_opened"):
            self._registry.pm.hook.cs_store_opened(store=store)


def _describe(exc: BaseException) -> str:
    """``Type: message (file:line)`` of the innermost frame, for ``plugins`` and errors."""
    import traceback

    last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f" ({last[0].filename}:{last[0].lineno})" if last else ""
    return f"{type(exc).__name__}: {exc}{where}"


_default: PluginRegistry | None = None


def default_registry() -> PluginRegistry:
    """The process-wide registry over installed entry points."""
    global _default
    if _default is None:
        _default = PluginRegistry()
    return _default
