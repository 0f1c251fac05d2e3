"""A driver package from outside the cs_core tree, installed by pip, passes the suite."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import pytest

from cs_core.drivers.plugins import PluginRegistry
from cs_core.testing.conformance import GraphDriverConformance


@pytest.fixture(autouse=True)
def _installed(thirdparty_site: Path) -> None:
    """Every test here needs the packages installed."""


def test_found_through_its_entry_point(thirdparty_site: Path) -> None:
    dist = metadata.distribution("cs-tinydriver")
    assert Path(str(dist.locate_file(""))).resolve() == thirdparty_site.resolve()
    registry = PluginRegistry()
    info = registry.plugins["tiny"]
    assert (info.distribution, info.module, info.loaded) == ("cs-tinydriver", "cs_tinydriver.hooks",
                                                            False)
    cls = registry.driver_class("tiny")
    assert cls.__module__ == "cs_tinydriver.driver" and info.drivers == ["tiny"]


class TestTinyConformance(GraphDriverConformance):
    driver_name = "tiny"
