"""pytest plugin (entry point ``pytest11: cs_core``): fixtures for driver packages' tests.

The fixtures live in :mod:`cs_core.testing.fixtures`; importing them here is what makes
pytest offer them to every test once cs_core is installed.
"""

from __future__ import annotations

import pytest

from cs_core.testing.fixtures import cs_driver, cs_registry, cs_tmp_store

__all__ = ["cs_driver", "cs_registry", "cs_tmp_store"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "cs_driver(name): graph driver the cs_tmp_store fixture opens (default vfs)"
    )
