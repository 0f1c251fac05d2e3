"""What a writer does while it holds the layer lock (issue 13 item 1, the 4-writer rate).

Every writer, ours and Go's, queues on layers.lock; whatever one of them does under it, every
other waits for. Module imports are pure CPU that can happen before the lock: on shared CPUs
an import under the lock was paid once per waiting writer.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from cs_core.testing.tars import layer_tar

# Runs in a fresh interpreter so that nothing has imported the ingest path yet; an audit hook
# sees each import and whether the layer store's lock is held for writing at that moment.
_PROBE = r"""
import sys
from cs_core.store import open_store

graph, run, tar = sys.argv[1:4]
store = open_store(graph_root=graph, run_root=run, driver_name="vfs")
layer = store.create_layer()
lock = store.layer_store.lock
under_lock = []

def hook(event, args):
    if event == "import" and lock.locked_for_writing:
        under_lock.append(args[0])

sys.addaudithook(hook)
with open(tar, "rb") as stream:
    store.apply_diff(layer.id, stream)
print(" ".join(sorted(set(under_lock))))
"""


def test_applydiff_imports_nothing_under_the_layer_lock(tmp_path: Path) -> None:
    tar = tmp_path / "small.tar"
    tar.write_bytes(layer_tar([("etc/hostname", b"host\n"), ("usr/bin/tool", b"tool\n")]))
    proc = subprocess.run([sys.executable, "-c", _PROBE, str(tmp_path / "g"),
                           str(tmp_path / "r"), str(tar)],
                          check=True, capture_output=True, text=True)
    assert proc.stdout.split() == [], proc.stdout


_OPEN_PROBE = r"""
import os, sys
from cs_core import lockfile
from cs_core.store import open_store

graph, run = sys.argv[1:3]
os.makedirs(graph, mode=0o700)
lock = lockfile.get(os.path.join(graph, "storage.lock"))
under_lock = []

def hook(event, args):
    if event == "import" and lock.locked_for_writing:
        under_lock.append(args[0])

sys.addaudithook(hook)
open_store(graph_root=graph, run_root=run, driver_name="vfs")
print(" ".join(sorted(set(under_lock))))
"""


def test_opening_a_store_imports_no_driver_under_the_graph_lock(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-c", _OPEN_PROBE, str(tmp_path / "g"),
                           str(tmp_path / "r")], check=True, capture_output=True, text=True)
    assert proc.stdout.split() == [], proc.stdout
