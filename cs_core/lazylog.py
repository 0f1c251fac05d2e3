"""Module loggers that import :mod:`logging` only when something is logged.

``logging`` (with the ``traceback``, ``threading`` and ``string`` modules it pulls in) cost
every CLI process ~25M instructions while a normal run logs nothing. The store's modules
write ``log = logging.getLogger(__name__)`` with this module standing in for ``logging``;
the CLI's handler and level (``configure``) are installed when ``logging`` is first imported,
by a logger here or, for plugins that import it themselves, when the registry loads them
(``apply_pending``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

_pending: Callable[[], None] | None = None


class Logger:
    """The subset of ``logging.Logger`` the core calls, forwarded on first use."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def _target(self) -> Any:
        import logging

        apply_pending()
        return logging.getLogger(self.name)

    def debug(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self._target().debug(msg, *args, **kwargs)

    def info(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self._target().info(msg, *args, **kwargs)

    def warning(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self._target().warning(msg, *args, **kwargs)

    def error(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self._target().error(msg, *args, **kwargs)


def getLogger(name: str) -> Logger:
    return Logger(name)


def configure(setup: Callable[[], None], *, now: bool = False) -> None:
    """Run ``setup`` now if ``logging`` is loaded (or ``now``), else once it is imported."""
    global _pending
    _pending = setup
    if now:
        import logging  # noqa: F401 - loaded for apply_pending
    apply_pending()


def apply_pending() -> None:
    """Install the pending configuration if something has imported ``logging`` meanwhile."""
    global _pending
    if _pending is not None and "logging" in sys.modules:
        setup, _pending = _pending, None
        setup()
