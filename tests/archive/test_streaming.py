"""Memory stays bounded whatever the layer's size: a multi-GB zero file in a gzip'd tar."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SCRIPT = textwrap.dedent("""
    import io, gzip, os, sys, tarfile, threading

    def peak_kb():
        # VmHWM: this process's own peak. ru_maxrss carries the parent's peak across fork and
        # exec, so it would count the pytest process's size (it grows as other tests run).
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    from cs_core.archive.apply import ApplyOptions, apply_tar
    from cs_core.archive.compression import DigestReader, decompress_stream
    from cs_core.archive.tarsplit import TarSplitWriter

    SIZE = int(sys.argv[2])
    root, packed_path = sys.argv[1], sys.argv[3]
    # Build the gzip'd tar on disk in a stream (header, zeros, padding, end) without holding it.
    with open(packed_path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=1) as gz:
        info = tarfile.TarInfo("zeros")
        info.size = SIZE
        gz.write(info.tobuf(format=tarfile.PAX_FORMAT))
        chunk = bytes(1 << 20)
        left = SIZE
        while left:
            n = min(left, len(chunk))
            gz.write(chunk[:n])
            left -= n
        gz.write(bytes(-SIZE % 512) + bytes(1024))
    before = peak_kb()
    with open(packed_path, "rb") as fh, open(os.devnull, "wb") as sink:
        raw = DigestReader(fh)
        kind, plain = decompress_stream(raw)
        digest = DigestReader(plain)
        result = apply_tar(root, digest, ApplyOptions(), TarSplitWriter(sink))
    after = peak_kb()
    print(result.size, digest.size, before, after)
""")


@pytest.mark.slow
def test_multi_gb_zero_file_bounded_memory(tmp_path: Path) -> None:
    size = 3 << 30
    root = tmp_path / "root"
    root.mkdir()
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(root), str(size), str(tmp_path / "z.tar.gz")],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    consumed, digested, before_kb, after_kb = (int(x) for x in proc.stdout.split())
    assert consumed == digested >= size
    assert (root / "zeros").stat().st_size == size
    assert (root / "zeros").stat().st_blocks * 512 < 1 << 20  # holes, not 3 GiB of zeros
    assert after_kb - before_kb < 64 * 1024, f"peak RSS grew by {after_kb - before_kb} KiB"
    assert after_kb < 160 * 1024
