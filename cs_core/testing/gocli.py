"""The Go reference CLI (`containers-storage` from Debian) driven on a given store."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any


class GoCLI:
    """The Go reference CLI on a given store."""

    def __init__(self, graph: Path, run: Path, driver: str = "vfs") -> None:
        exe = shutil.which("containers-storage", path="/usr/bin:/usr/local/bin")
        assert exe is not None
        self.base = [exe, "-g", str(graph), "-R", str(run), "-s", driver]

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
