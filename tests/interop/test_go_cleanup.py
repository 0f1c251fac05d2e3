"""What one implementation leaves on disk that the other must live with: records Go 1.43 keeps
in its files, and temp files of a write that was killed half-way."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from cs_core.store import ContainerOptions, Store
from cs_core.testing.gocli import GoCLI

pytestmark = pytest.mark.interop


def test_go_volatile_container_stays_in_containers_json(
        make_store: Callable[[], Store], go_cli: GoCLI, driver_name: str) -> None:
    # Go 1.43 keeps a --volatile container in containers.json (it has no volatile file);
    # after our writes it must still be there, or 1.43 loses track of it.
    image = go_cli.out("create-image").split()[0]
    volatile = go_cli.out("create-container", "--volatile", image).split()[0]
    s = make_store()
    assert s.container(volatile).volatile
    ours = s.create_container(image=image)
    s.add_names(volatile, ["renamed"])
    assert {c["id"] for c in go_cli.json("containers")} == {volatile, ours.id}
    assert go_cli.out("get-names", volatile).split() == ["renamed"]
    stable = s.graph_root / f"{driver_name}-containers" / "containers.json"
    assert volatile in {c["id"] for c in json.loads(stable.read_text())}
    # Only containers created volatile go to the volatile file, as at HEAD.
    made_volatile = s.create_container(image=image, options=ContainerOptions(volatile=True))
    volatile_file = stable.with_name("volatile-containers.json")
    assert [c["id"] for c in json.loads(volatile_file.read_text())] == [made_volatile.id]
