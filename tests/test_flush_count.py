"""How many flushes a small layer costs (issue 13 item 1's 4-writer workload).

Every fsync of a record file is taken under the layer lock, so with several writers each one
delays all the others. ``create-layer`` followed by ``applydiff`` of a two-file tar makes
10 fsyncs and one ``syncfs``: the tar-split is flushed by the layer's ``syncfs`` rather than on
its own, and the incomplete record's rename by the flush that follows it. ``create-layer``
fsyncs the empty directory the driver made (with its parent and the driver's home) instead of
a ``syncfs``, which would also wait for every other process's dirty data on the filesystem: a
big import beside it (bench/contention.py). What stays is the data of each record file written
before work starts, and file plus directory of each completing save.
``tests/test_powercut.py`` checks that acknowledged layers still survive a power cut.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from cs_core.testing.privileged import requires_command
from cs_core.testing.tars import layer_tar


def _fsyncs(trace: Path) -> int:
    return sum(1 for line in trace.read_text().splitlines()
               if " fsync(" in line or " fdatasync(" in line)


def _syncfs(trace: Path) -> int:
    return sum(1 for line in trace.read_text().splitlines() if " syncfs(" in line)


def test_small_layer_fsyncs(tmp_path: Path) -> None:
    requires_command("strace")
    base = [sys.executable, "-m", "cs_core", "-g", str(tmp_path / "g"), "-R", str(tmp_path / "r"),
            "-s", "vfs"]
    subprocess.run([*base, "layers"], check=True, capture_output=True)  # the store exists
    tar = tmp_path / "small.tar"
    tar.write_bytes(layer_tar([("etc/hostname", b"host\n"), ("usr/bin/tool", b"tool\n")]))
    counts = []
    layer = ""
    for args in (["create-layer"], ["applydiff", "-f", str(tar)]):
        trace = tmp_path / f"{args[0]}.trace"
        proc = subprocess.run(["strace", "-f", "-qq", "-e", "trace=fsync,fdatasync,syncfs", "-o", str(trace),
                               *base, *args, *([layer] if layer else [])],
                              check=True, capture_output=True, text=True)
        layer = layer or proc.stdout.split()[0]
        counts.append((_fsyncs(trace), _syncfs(trace)))
    assert counts == [(6, 0), (4, 1)], counts
