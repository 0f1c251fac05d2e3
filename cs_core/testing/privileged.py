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


def skip_or_fail(reason: str) -> None:
    """Skip with ``reason``; under CS_REQUIRE_PRIVILEGED=1, fail with it instead."""
    if os.environ.get(ENV) == "1":
        pytest.fail(f"{reason} (required because {ENV}=1)", pytrace=False)
    pytest.skip(reason)


def require(condition: bool, reason: str) -> None:
    """Skip (or fail under CS_REQUIRE_PRIVILEGED=1) unless ``condition`` holds (kernel features)."""
    if not condition:
        skip_or_fail(reason)


def require_privileged(reason: str = "needs root") -> None:
    """Skip (or, under CS_REQUIRE_PRIVILEGED=1, fail) unless running as root."""
    if os.geteuid() != 0:
        skip_or_fail(reason)


def requires_command(*names: str) -> None:
    """Skip (or fail under CS_REQUIRE_PRIVILEGED=1) unless every program is on PATH.

    Not for the Go CLI: on PATH, ``containers-storage`` is our own console script. Tests that
    run Go use :func:`cs_core.testing.gocli.go_cli_path`.
    """
    go = [n for n in names if os.path.basename(n) == "containers-storage"]
    if go:
        raise AssertionError(f"requires_command({go[0]!r}): use cs_core.testing.gocli.go_cli_path() "
                             "for the Go CLI (a bare containers-storage is our own script)")
    absent = [n for n in names if shutil.which(n) is None]
    if absent:
        skip_or_fail(f"needs {', '.join(absent)} on PATH")
