"""``containers-storage … | head -1``: when the reader leaves, the CLI ends as Go's does.

Go is killed by SIGPIPE (the shell shows 141) and prints nothing; ours used to catch the
BrokenPipeError as an OSError and print ``broken pipe``, exit 1.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from cs_core.testing import go_cli_path

from .conftest import CLI

KILLED_BY_SIGPIPE = -signal.SIGPIPE


def _into_head(argv: list[str], unbuffered: bool) -> tuple[int, bytes, bytes]:
    """Run ``argv | head -1``: (argv's return code, its stderr, what head printed)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    if unbuffered:
        env["PYTHONUNBUFFERED"] = "1"  # each out() its own write(2), as in CI's environment
    producer = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert producer.stdout is not None and producer.stderr is not None
    head = subprocess.run(["head", "-1"], stdin=producer.stdout, capture_output=True, timeout=60)
    producer.stdout.close()  # head alone held the pipe's read end
    err = producer.stderr.read()
    producer.stderr.close()
    return producer.wait(timeout=60), err, head.stdout


BUFFERING = pytest.mark.parametrize("unbuffered", [False, True], ids=["buffered", "unbuffered"])
# Far more than a pipe holds, so the reader leaves while we still write.
NAMES = [f"name-{i:05d}-{'x' * 30}" for i in range(5000)]


@BUFFERING
def test_a_reader_leaving_kills_us_by_sigpipe_as_go(cli: CLI, tmp_path: Path, unbuffered: bool) -> None:
    layer = cli.ok("create-layer").strip()
    args = ["create-image", *(f"--name={n}" for n in NAMES), layer]
    rc, err, first = _into_head([*cli.base(), *args], unbuffered)
    assert (rc, err, len(first)) == (KILLED_BY_SIGPIPE, b"", 65)
    assert len(cli.ok("image", first.decode().strip()).splitlines()) > len(NAMES)  # it was made
    go = [go_cli_path(), "-g", str(tmp_path / "go-g"), "-R", str(tmp_path / "go-r"), "-s", "vfs"]
    go_layer = subprocess.run([*go, "create-layer"], capture_output=True, text=True, check=True)
    rc, err, first = _into_head([*go, *args[:-1], go_layer.stdout.strip()], unbuffered)
    assert (rc, err, len(first)) == (KILLED_BY_SIGPIPE, b"", 65)


@BUFFERING
def test_binary_output_into_head(cli: CLI, tmp_path: Path, unbuffered: bool) -> None:
    blob = tmp_path / "blob"
    blob.write_bytes(b"first line\n" + os.urandom(1 << 20))
    image = cli.ok("create-image", cli.ok("create-layer").strip()).split()[0]
    cli.ok("set-image-data", "-f", str(blob), image, "blob")
    rc, err, first = _into_head([*cli.base(), "get-image-data", image, "blob"], unbuffered)
    assert (rc, err, first) == (KILLED_BY_SIGPIPE, b"", b"first line\n")


def test_create_image_into_head_many_times(cli: CLI) -> None:
    # The command: two lines (ID, then the name), each its own write when unbuffered,
    # so the reader leaves between them only now and then.
    layer = cli.ok("create-layer").strip()
    seen = set()
    for i in range(40):
        rc, err, first = _into_head([*cli.base(), "create-image", "-n", f"img{i}", layer], True)
        assert err == b"" and rc in (0, KILLED_BY_SIGPIPE), (rc, err)
        assert len(first) == 65
        seen.add(rc)
    assert "img39" in cli.ok("images")
    print(f"create-image | head -1, 40 times: return codes {sorted(seen)}")
