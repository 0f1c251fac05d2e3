"""Test support for cs_core and driver packages: fixtures and the driver conformance suite.

A pytest plugin that is loaded only where asked for, never into every pytest run on the
machine: ``pytest -p cs_core.testing`` (or ``addopts = "-p cs_core.testing"`` under
``[tool.pytest.ini_options]``), or ``pytest_plugins = ["cs_core.testing"]`` in the top-level
``conftest.py``. It provides the fixtures in :mod:`cs_core.testing.fixtures` and the
``cs_driver`` marker; the conformance suite is :class:`cs_core.testing.conformance.GraphDriverConformance`.
"""

from __future__ import annotations

import pytest

from cs_core.testing.fixtures import cs_driver, cs_registry, cs_tmp_store
from cs_core.testing.gocli import go_cli_path
from cs_core.testing.privileged import require_privileged, requires_command

__all__ = ["cs_driver", "cs_registry", "cs_tmp_store", "go_cli_path", "require_privileged",
           "requires_command"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "cs_driver(name): graph driver the cs_tmp_store fixture opens (default vfs)"
    )
