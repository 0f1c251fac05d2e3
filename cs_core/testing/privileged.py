"""Skips that turn into failures in CI.

Tests that need root, mounts, loop devices or btrfs call :func:`require_privileged`. On a
developer laptop without those they are skipped; with ``CS_REQUIRE_PRIVILEGED=1`` (set by
``.ci/run``) a missing capability fails the test instead, so CI never silently skips them.
"""

from __future__ import annotations

import os
import shutil

import pytest

ENV = "CS_REQUIRE_PRIVILEGED"


def _missing(reason: str) -> None:
    if os.environ.get(ENV) == "1":
        pytest.fail(f"{reason} (required because {ENV}=1)", pytrace=False)
    pytest.skip(reason)


def require(condition: bool, reason: str) -> None:
    """Skip (or fail under CS_REQUIRE_PRIVILEGED=1) unless ``condition`` holds (kernel features)."""
    if not condition:
        _missing(reason)


def require_privileged(reason: str = "needs root") -> None:
    """Skip (or, under CS_REQUIRE_PRIVILEGED=1, fail) unless running as root."""
    if os.geteuid() != 0:
        _missing(reason)


def requires_command(*names: str) -> None:
    """Skip (or fail under CS_REQUIRE_PRIVILEGED=1) unless every program is on PATH."""
    missing = [n for n in names if shutil.which(n) is None]
    if missing:
        _missing(f"needs {', '.join(missing)} on PATH")
