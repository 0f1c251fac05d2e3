"""The Go reference CLI (`containers-storage` from Debian), found by absolute path and checked.

A bare ``containers-storage`` on PATH is *our* console script (tox and the venvs put theirs
first), so a test that meant to compare with Go and looked it up by name would compare us with
ourselves and always pass. Every test that runs Go gets its path from :func:`go_cli_path`:
``/usr/bin/containers-storage`` unless ``CS_GO_CLI`` names another absolute path, and only
once the file has been seen to be a Go-built ELF executable. When it is missing (or not Go)
the test skips, or fails under ``CS_REQUIRE_PRIVILEGED=1``, through the privileged gate.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
from pathlib import Path
from typing import Any

from cs_core.testing.privileged import skip_or_fail

ENV = "CS_GO_CLI"
DEFAULT = "/usr/bin/containers-storage"
# The Go linker writes this magic at the start of the .go.buildinfo section of every binary
# it builds (runtime/debug.ReadBuildInfo reads it back); no Python script or zipapp has it.
_GO_BUILDINFO = b"\xff Go buildinf:"
_ELF = b"\x7fELF"


@functools.cache
def _why_not_go(path: str) -> str | None:
    """None when ``path`` is an executable Go binary; otherwise why it is not."""
    if not os.path.isabs(path):
        return f"{ENV}={path!r} must be an absolute path"
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        return f"needs the Go reference CLI at {path} ({e.strerror})"
    if not os.access(path, os.X_OK):
        return f"{path} is not executable"
    if not data.startswith(_ELF):
        return f"{path} is not an ELF binary (our Python console script?), so not the Go CLI"
    if _GO_BUILDINFO not in data:
        return f"{path} is an ELF binary without Go build info, so not the Go CLI"
    return None


def go_cli_path() -> str:
    """Absolute path of the Go CLI; skips (fails under CS_REQUIRE_PRIVILEGED=1) without it."""
    path = os.environ.get(ENV) or DEFAULT
    reason = _why_not_go(path)
    if reason is not None:
        skip_or_fail(reason)
    return path


class GoCLI:
    """The Go reference CLI on a given store."""

    def __init__(self, graph: Path, run: Path, driver: str = "vfs") -> None:
        self.base = [go_cli_path(), "-g", str(graph), "-R", str(run), "-s", driver]

    def run(
        self, *args: str, input: bytes | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[bytes]:
        proc = subprocess.run([*self.base, *args], input=input, capture_output=True, timeout=120)
        if check and proc.returncode != 0:
            raise AssertionError(f"Go CLI {args} failed: {proc.stderr.decode()}{proc.stdout.decode()}")
        return proc

    def out(self, *args: str) -> str:
        return self.run(*args).stdout.decode()

    def json(self, *args: str) -> Any:
        # Go's flag parser stops at the first positional argument: --json goes right after
        # the command name.
        return json.loads(self.run(args[0], "--json", *args[1:]).stdout)
