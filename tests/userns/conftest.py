"""Fixtures for auto user namespaces: subordinate-ID files in a temporary directory.

The real /etc/subuid and /etc/subgid are never touched: cs_core reads the files named by
``_CS_CORE_SUBUID_FILE``/``_CS_CORE_SUBGID_FILE`` instead, in this process and in the CLI
processes the tests start (they inherit the environment).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from cs_core.userns.idmap import SUBGID_FILE_ENV, SUBUID_FILE_ENV

SubIDs = Callable[[str], None]


@pytest.fixture
def subids(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SubIDs:
    """Call with subuid-style text (``name:start:count`` lines) used for both files."""

    def write(text: str) -> None:
        for name, env in (("subuid", SUBUID_FILE_ENV), ("subgid", SUBGID_FILE_ENV)):
            path = tmp_path / name
            path.write_text(text)
            monkeypatch.setenv(env, str(path))

    return write
