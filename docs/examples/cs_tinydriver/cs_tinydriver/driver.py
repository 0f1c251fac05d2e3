"""``tiny``: each layer is ``<home>/<id>``, a ``cp -a`` copy of its parent.

Everything else (apply, diff, changes) comes from GraphDriver's naive implementations,
which is the point: a driver only has to say where a layer's files are.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from cs_core import CreateOpts, DriverConfig, DriverError, GraphDriver, MountOpts


class TinyDriver(GraphDriver):
    name = "tiny"
    priority = 1000  # tried last when no driver is named (overlay is 10, vfs 300)

    def __init__(self, config: DriverConfig) -> None:
        super().__init__(config)
        for option in config.options:
            parsed = self.own_option(option)  # None: meant for another driver
            if parsed is not None:
                raise DriverError(f"tiny driver does not support {parsed[0]} options")
        self.home.mkdir(parents=True, exist_ok=True)

    def layer_dir(self, id: str) -> Path:
        return self.home / os.path.basename(id)

    def create(self, id: str, parent: str | None, opts: CreateOpts) -> None:
        if opts.storage_opt:
            raise DriverError("tiny driver does not support storage options")
        target = self.layer_dir(id)
        if parent is None:
            target.mkdir(0o755)
            return
        source = self.layer_dir(parent)
        if not source.is_dir():
            raise DriverError(f"parent layer {parent} does not exist")
        done = subprocess.run(["cp", "-a", "--reflink=auto", "--", str(source), str(target)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            shutil.rmtree(target, ignore_errors=True)
            raise DriverError(f"copying layer {parent}: {done.stderr.strip()}")

    def remove(self, id: str) -> None:
        shutil.rmtree(self.layer_dir(id), ignore_errors=True)

    def get(self, id: str, opts: MountOpts) -> Path:
        path = self.layer_dir(id)
        if not path.is_dir():
            raise DriverError(f"layer {id} does not exist")
        return path

    def put(self, id: str) -> None:
        """Nothing is mounted."""

    def exists(self, id: str) -> bool:
        return self.layer_dir(id).is_dir()

    def list_layers(self) -> list[str]:
        return sorted(entry.name for entry in os.scandir(self.home) if entry.is_dir())
