"""The plugin registry: lazy loading, conflicts, environment switches, broken plugins.

Each test writes small plugin modules into its own directory on ``sys.path`` and hands the
registry entry points for them, exactly as installed distributions would declare them.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import pytest

from cs_core.drivers.plugins import ENTRY_POINT_GROUP, ENV_DISABLE, ENV_ONLY, PluginRegistry
from cs_core.errors import NotSupported, PluginError, StorageError

DRIVER = '''
from cs_core.drivers.base import GraphDriver
from cs_core.drivers.hookspecs import hookimpl


class Driver(GraphDriver):
    name = {name!r}
    create = remove = get = put = exists = list_layers = None


@hookimpl
def cs_register_graph_drivers(register):
    register(Driver)
'''

MakePlugin = Callable[..., metadata.EntryPoint]


@pytest.fixture
def make_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> MakePlugin:
    """Write module ``<prefix>_<entry name>`` and return an entry point naming it."""
    prefix = f"csplug_{abs(hash(tmp_path)):x}"
    monkeypatch.syspath_prepend(str(tmp_path))

    def make(name: str, source: str | None = None, *, driver: str | None = None) -> metadata.EntryPoint:
        module = f"{prefix}_{name}"
        text = DRIVER.format(name=driver or name) if source is None else textwrap.dedent(source)
        (tmp_path / f"{module}.py").write_text(text)
        monkeypatch.delitem(sys.modules, module, raising=False)
        return metadata.EntryPoint(name=name, value=module, group=ENTRY_POINT_GROUP)

    return make


def _imported(ep: metadata.EntryPoint) -> bool:
    return ep.value in sys.modules


def test_installed_drivers_are_declared_not_imported() -> None:
    registry = PluginRegistry()
    vfs = registry.plugins["vfs"]
    assert (vfs.distribution, vfs.module, vfs.loaded) == ("cs-vfs", "cs_vfs.hooks", False)
    assert registry.driver_class("vfs").__module__ == "cs_vfs.driver"
    assert vfs.loaded and vfs.drivers == ["vfs"]


def test_loading_is_lazy(make_plugin: MakePlugin) -> None:
    a, b = make_plugin("alpha"), make_plugin("beta")
    registry = PluginRegistry([a, b])
    assert not _imported(a) and not _imported(b)
    assert registry.driver_class("alpha").name == "alpha"
    assert _imported(a) and not _imported(b)  # the entry named like the driver is enough
    assert set(registry.drivers()) == {"alpha", "beta"} and _imported(b)


def test_driver_found_in_a_differently_named_plugin(make_plugin: MakePlugin) -> None:
    registry = PluginRegistry([make_plugin("bundle", driver="inner")])
    assert registry.driver_class("inner").name == "inner"
    assert registry.plugins["bundle"].drivers == ["inner"]


def test_duplicate_driver_names_are_rejected_naming_both(make_plugin: MakePlugin) -> None:
    registry = PluginRegistry([make_plugin("first", driver="dup"), make_plugin("second", driver="dup")])
    registry.load_all()
    assert registry.plugins["first"].loaded
    error = registry.plugins["second"].error
    assert error is not None and "'second'" in error and "'first'" in error and "'dup'" in error
    assert registry.driver_class("dup").__module__.endswith("_first")
    # The rejected plugin is unregistered, so it adds nothing else either.
    assert not registry.plugins["second"].loaded and registry.plugins["second"].drivers == []


def test_disable_switch(make_plugin: MakePlugin, monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = make_plugin("alpha"), make_plugin("beta")
    monkeypatch.setenv(ENV_DISABLE, " alpha , ")
    registry = PluginRegistry([a, b])
    with pytest.raises(NotSupported, match=ENV_DISABLE):
        registry.driver_class("alpha")
    assert not _imported(a)
    assert set(registry.drivers()) == {"beta"}


def test_only_switch(make_plugin: MakePlugin, monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = make_plugin("alpha"), make_plugin("beta")
    monkeypatch.setenv(ENV_ONLY, "beta")
    registry = PluginRegistry([a, b])
    assert set(registry.drivers()) == {"beta"} and not _imported(a)
    assert registry.plugins["alpha"].blocked


def test_broken_plugin_is_isolated(make_plugin: MakePlugin) -> None:
    broken = make_plugin("broken", "import no_such_module_for_cs_core_tests\n")
    registry = PluginRegistry([broken, make_plugin("good")])
    assert registry.driver_class("good").name == "good"
    assert set(registry.drivers()) == {"good"}
    with pytest.raises(PluginError) as caught:
        registry.driver_class("broken")
    message = str(caught.value)
    assert "plugin 'broken' failed to load" in message and "no_such_module_for_cs_core_tests" in message


def test_plugin_failing_inside_its_hook(make_plugin: MakePlugin) -> None:
    ep = make_plugin("raiser", """
        from cs_core.drivers.hookspecs import hookimpl

        @hookimpl
        def cs_register_graph_drivers(register):
            raise RuntimeError("no driver today")
    """)
    registry = PluginRegistry([ep])
    with pytest.raises(PluginError, match="RuntimeError: no driver today"):
        registry.driver_class("raiser")


def test_misspelled_hook_is_caught(make_plugin: MakePlugin) -> None:
    ep = make_plugin("typo", """
        from cs_core.drivers.hookspecs import hookimpl

        @hookimpl
        def cs_register_graph_driver(register):
            pass
    """)
    registry = PluginRegistry([ep])
    info = registry.load("typo")
    assert info.error is not None and "cs_register_graph_driver" in info.error
    assert registry.pm.get_plugin("typo") is None  # nothing half-registered stays behind


@pytest.mark.parametrize(("source", "expected"), [
    ("from cs_core.drivers.hookspecs import hookimpl\n\n@hookimpl\n"
     "def cs_register_graph_drivers(register):\n    register(object)\n", "not a GraphDriver"),
    ("from cs_core.drivers.base import GraphDriver\nfrom cs_core.drivers.hookspecs import hookimpl\n"
     "class Nameless(GraphDriver):\n    pass\n\n@hookimpl\n"
     "def cs_register_graph_drivers(register):\n    register(Nameless)\n", "without a name"),
])
def test_invalid_registrations(make_plugin: MakePlugin, source: str, expected: str) -> None:
    registry = PluginRegistry([make_plugin("bad", source)])
    assert expected in (registry.load("bad").error or "")


def test_entry_point_must_name_a_module(make_plugin: MakePlugin) -> None:
    ep = make_plugin("attr", "def hooks():\n    pass\n")
    ep = metadata.EntryPoint(name="attr", value=f"{ep.value}:hooks", group=ENTRY_POINT_GROUP)
    assert "must name a module" in (PluginRegistry([ep]).load("attr").error or "")


def test_unknown_driver(make_plugin: MakePlugin) -> None:
    with pytest.raises(NotSupported, match="'nosuch' not found"):
        PluginRegistry([make_plugin("alpha")]).driver_class("nosuch")


def test_first_entry_point_of_a_name_wins(make_plugin: MakePlugin) -> None:
    first = make_plugin("same", driver="from_first")
    second = make_plugin("same2", driver="from_second")
    second = metadata.EntryPoint(name="same", value=second.value, group=ENTRY_POINT_GROUP)
    registry = PluginRegistry([first, second])
    assert set(registry.drivers()) == {"from_first"}


@pytest.mark.cs_driver("some-driver")
def test_cs_driver_marker(cs_driver: str) -> None:
    assert cs_driver == "some-driver"


def test_cs_tmp_store_fixture(cs_tmp_store: object, tmp_path: Path) -> None:
    from cs_core.store import Store

    assert isinstance(cs_tmp_store, Store)
    assert cs_tmp_store.driver_name == "vfs" and Path(cs_tmp_store.graph_root) == tmp_path / "graph"
    layer = cs_tmp_store.create_layer()
    assert (tmp_path / "graph" / "vfs" / "dir" / layer.id).is_dir()
    with pytest.raises(StorageError, match="layer not known"):
        cs_tmp_store.layer("nope")


OBSERVER = '''
from cs_core.drivers.hookspecs import hookimpl

seen = []


@hookimpl
def cs_store_opened(store):
    seen.append((store.driver_name, store.graph_root))
'''


@pytest.mark.parametrize("driver", ["vfs", ""])
def test_observer_plugin_sees_every_store(make_plugin: MakePlugin, tmp_path: Path, driver: str) -> None:
    """A plugin with no driver is told of each opened store, whether or not ``-s`` names a driver
    (a named driver used to load only that driver's plugin, so the observer never ran)."""
    from cs_core.drivers.entrypoints import entry_points
    from cs_core.store import open_store

    observer = make_plugin("audit", OBSERVER)
    installed = [ep for ep in entry_points(ENTRY_POINT_GROUP) if ep.name == "vfs"]
    registry = PluginRegistry([*installed, observer])
    store = open_store(graph_root=str(tmp_path / "g"), run_root=str(tmp_path / "r"),
                       driver_name=driver, registry=registry)
    try:
        module = sys.modules[observer.value]
        assert module.seen == [("vfs", tmp_path / "g")]
        assert registry.plugins["audit"].error is None
    finally:
        store.close()


def test_a_broken_observer_does_not_stop_the_store(make_plugin: MakePlugin, tmp_path: Path) -> None:
    from cs_core.drivers.entrypoints import entry_points
    from cs_core.store import open_store

    broken = make_plugin("broken", "import no_such_module_for_cs_core_tests\n")
    installed = [ep for ep in entry_points(ENTRY_POINT_GROUP) if ep.name == "vfs"]
    registry = PluginRegistry([*installed, broken])
    store = open_store(graph_root=str(tmp_path / "g"), run_root=str(tmp_path / "r"),
                       driver_name="vfs", registry=registry)
    store.close()
    assert "no_such_module_for_cs_core_tests" in (registry.plugins["broken"].error or "")


RANKED = '''
from cs_core import GraphDriver, NotSupported, hookimpl


class Driver(GraphDriver):
    name = {name!r}
    aliases = {aliases!r}
    priority = {priority!r}
    auto_select = {auto!r}
    create = remove = get = put = exists = list_layers = None

    @classmethod
    def probe(cls, config):
        if {fails!r}:
            raise NotSupported("{name} cannot work here")


@hookimpl
def cs_register_graph_drivers(register):
    register(Driver)
'''


def _ranked(make_plugin: MakePlugin, name: str, priority: int, *, auto: bool = True,
            fails: bool = False, aliases: tuple[str, ...] = ()) -> metadata.EntryPoint:
    return make_plugin(name, RANKED.format(name=name, priority=priority, auto=auto, fails=fails,
                                           aliases=aliases))


def _select(registry: PluginRegistry, root: Path, priority: tuple[str, ...] = ()) -> str:
    from cs_core.drivers.base import DriverConfig
    from cs_core.selection import select_driver

    def config_for(name: str) -> DriverConfig:
        return DriverConfig(home=root / name, run_home=root / "run" / name, graph_root=root,
                            run_root=root / "run")

    return select_driver(registry, "", root, config_for, priority).name


def test_selection_follows_the_classes_priority(make_plugin: MakePlugin, tmp_path: Path) -> None:
    """The order is the drivers' own, not a list of names in the core."""
    registry = PluginRegistry([_ranked(make_plugin, "alpha", 50), _ranked(make_plugin, "zeta", 5),
                               _ranked(make_plugin, "broken", 1, fails=True)])
    assert _select(registry, tmp_path) == "zeta"


def test_a_driver_may_opt_out_of_automatic_selection(make_plugin: MakePlugin, tmp_path: Path) -> None:
    registry = PluginRegistry([_ranked(make_plugin, "anon", 1, auto=False),
                               _ranked(make_plugin, "plain", 50)])
    assert _select(registry, tmp_path) == "plain"
    # storage.conf's driver_priority may still name it, by an alias too.
    registry = PluginRegistry([_ranked(make_plugin, "shy2", 1, auto=False, aliases=("quiet",)),
                               _ranked(make_plugin, "plain2", 50)])
    assert _select(registry, tmp_path, ("quiet",)) == "shy2"


def test_selection_with_a_broken_plugin_installed(make_plugin: MakePlugin, tmp_path: Path) -> None:
    broken = make_plugin("kaput", "import no_such_module_for_cs_core_tests\n")
    registry = PluginRegistry([broken, _ranked(make_plugin, "fine", 50)])
    assert _select(registry, tmp_path) == "fine"
    registry = PluginRegistry([make_plugin("kaput2", "import no_such_module_for_cs_core_tests\n"),
                               _ranked(make_plugin, "cannot", 50, fails=True)])
    with pytest.raises(StorageError) as caught:
        _select(registry, tmp_path)
    message = str(caught.value)
    assert "cannot cannot work here" in message and "kaput2: plugin failed to load" in message


def test_prior_state_wins_without_loading_other_plugins(make_plugin: MakePlugin, tmp_path: Path) -> None:
    best, used = _ranked(make_plugin, "best", 1), _ranked(make_plugin, "used", 50)
    (tmp_path / "used").mkdir()
    registry = PluginRegistry([best, used])
    assert _select(registry, tmp_path) == "used"
    assert not _imported(best)


@pytest.mark.parametrize("options", [
    {}, {"tryfirst": True}, {"trylast": True}, {"hookwrapper": True}, {"wrapper": True},
    {"optionalhook": True}, {"specname": "cs_store_opened"},
], ids=str)
def test_our_hook_markers_mark_as_pluggys_do(options: dict[str, object]) -> None:
    """cs_core.drivers.markers stands in for pluggy's markers: pluggy reads only the dict."""
    import pluggy

    from cs_core.drivers import markers

    def ours() -> None: ...
    def theirs() -> None: ...

    markers.HookimplMarker("cs_core")(**options)(ours)  # type: ignore[arg-type]
    pluggy.HookimplMarker("cs_core")(**options)(theirs)  # type: ignore[call-overload]
    assert ours.cs_core_impl == theirs.cs_core_impl  # type: ignore[attr-defined]
    markers.HookspecMarker("cs_core")(ours, firstresult=bool(options))
    pluggy.HookspecMarker("cs_core")(theirs, firstresult=bool(options))
    assert ours.cs_core_spec == theirs.cs_core_spec  # type: ignore[attr-defined]


def test_plain_hooks_are_called_without_pluggy_and_others_through_it(tmp_path: Path) -> None:
    """A plugin with plain hook functions is called directly; one with hook options (here a
    wrapper) makes the registry hand every plugin to pluggy, which then calls all hooks."""
    code = """
import sys, types
from cs_core.drivers.base import GraphDriver
from cs_core.drivers.hookspecs import hookimpl
from cs_core.drivers.plugins import PluginRegistry

class Fake(GraphDriver):
    name = "fake"

plain = types.ModuleType("plain")
exec('''
calls = []
def cs_register_graph_drivers(register):
    calls.append("plain")
    register(Fake)
''', plain.__dict__)
plain.Fake = Fake
hookimpl(plain.cs_register_graph_drivers)
registry = PluginRegistry(entry_points=[])
registry._entry_points["plain"] = types.SimpleNamespace(load=lambda: plain)
from cs_core.drivers.plugins import PluginInfo
registry.plugins["plain"] = PluginInfo(name="plain", module="plain")
assert registry.driver_class("fake") is Fake and plain.calls == ["plain"]
print("pluggy" in sys.modules)
wrapped = types.ModuleType("wrapped")
exec('''
def cs_store_opened(store):
    yield
''', wrapped.__dict__)
hookimpl(wrapper=True)(wrapped.cs_store_opened)
registry._entry_points["wrapped"] = types.SimpleNamespace(load=lambda: wrapped)
registry.plugins["wrapped"] = PluginInfo(name="wrapped", module="wrapped")
registry.hooks.store_opened(None)
print("pluggy" in sys.modules, registry.pm.get_plugin("plain") is plain)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True", "True"]
