"""pluggy's hook markers, without importing pluggy (~30M instructions with ``inspect``).

A marker only sets ``<project>_spec`` / ``<project>_impl`` on the function, holding the same
options dict as ``pluggy.HookspecMarker`` / ``pluggy.HookimplMarker`` (pluggy reads nothing
else: ``PluginManager.parse_hookspec_opts``/``parse_hookimpl_opts``; tests/test_plugins.py
compares them with pluggy's own). So plugin modules and the hook specifications load without
pluggy, and the registry builds pluggy's manager only when a hook needs more than a plain call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., object])

PROJECT = "cs_core"


class HookspecMarker:
    def __init__(self, project_name: str) -> None:
        self.project_name = project_name

    def __call__(self, function: F | None = None, firstresult: bool = False, historic: bool = False,
                 warn_on_impl: Warning | None = None,
                 warn_on_impl_args: dict[str, Warning] | None = None) -> Any:
        def mark(func: F) -> F:
            if historic and firstresult:
                raise ValueError("cannot have a historic firstresult hook")
            setattr(func, self.project_name + "_spec", {
                "firstresult": firstresult, "historic": historic, "warn_on_impl": warn_on_impl,
                "warn_on_impl_args": warn_on_impl_args})
            return func

        return mark if function is None else mark(function)


class HookimplMarker:
    def __init__(self, project_name: str) -> None:
        self.project_name = project_name

    def __call__(self, function: F | None = None, hookwrapper: bool = False,
                 optionalhook: bool = False, tryfirst: bool = False, trylast: bool = False,
                 specname: str | None = None, wrapper: bool = False) -> Any:
        def mark(func: F) -> F:
            setattr(func, self.project_name + "_impl", {
                "wrapper": wrapper, "hookwrapper": hookwrapper, "optionalhook": optionalhook,
                "tryfirst": tryfirst, "trylast": trylast, "specname": specname})
            return func

        return mark if function is None else mark(function)


def plain_args(func: object) -> tuple[str, ...] | None:
    """The names a module-level hook function is called with (its parameters without
    defaults, as pluggy's ``varnames``), or None when pluggy's own handling is needed."""
    code = getattr(func, "__code__", None)
    if code is None or "." in getattr(func, "__qualname__", ".") or code.co_kwonlyargcount:
        return None
    names = code.co_varnames[:code.co_argcount]
    defaults = getattr(func, "__defaults__", None) or ()
    return tuple(names[:len(names) - len(defaults)])
