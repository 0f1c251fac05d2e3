"""applydiff / diff benchmark: cs_core against the Go CLI and ``tar -xf`` on one fresh ext4 loop fs.

Run as root: ``/work/venv/bin/python bench/applydiff.py [--driver overlay] [--runs 3]``.

Workloads: a ~300 MB layer of 20,000 files (plain, gzip, zstd), a layer of 100,000 tiny files,
and ``diff`` of the big layer. Every timing is the best of ``--runs``; each run applies into a fresh
store (or directory) on a freshly made journaled ext4 loop filesystem (the root fs here has no
journal, where creates after mass deletes are pathologically slow). Prints each ratio.

Engine rows time ``cs_core.archive`` directly (decompress, both digests, tar-split, apply into a
directory): what the store adds on top is bookkeeping.
"""

from __future__ import annotations

import argparse
import gzip
import io
import os
import random
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from pathlib import Path

GO = "/usr/bin/containers-storage"
OURS = [sys.executable, "-m", "cs_core.cli.main"]


def make_big(path: Path, files: int = 20_000, total: int = 300 << 20) -> None:
    """~300 MB over 20,000 files: half random (incompressible), half text-like, in 200 dirs."""
    rng = random.Random(42)
    noise = rng.randbytes(8 << 20)
    words = b" ".join(
        rng.choice([b"layer", b"image", b"storage", b"tar", b"container", b"digest"]) for _ in range(1 << 18)
    )
    sizes = [rng.randint(1, 2 * total // files) for _ in range(files)]
    scale = total / sum(sizes)
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tf:
        for d in range(200):
            info = tarfile.TarInfo(f"usr/share/d{d:03}")
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 1_700_000_000
            tf.addfile(info)
        for i, raw in enumerate(sizes):
            size = max(1, int(raw * scale))
            src = noise if i % 2 else words
            off = rng.randrange(0, len(src) - size) if size < len(src) else 0
            data = (src * (size // len(src) + 1))[:size] if size >= len(src) else src[off : off + size]
            info = tarfile.TarInfo(f"usr/share/d{i % 200:03}/file{i:05}.bin")
            info.size, info.mode, info.mtime = len(data), 0o644, 1_700_000_000
            tf.addfile(info, io.BytesIO(data))


def make_tiny(path: Path, files: int = 100_000) -> None:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tf:
        for d in range(100):
            info = tarfile.TarInfo(f"t/d{d:02}")
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 1_700_000_000
            tf.addfile(info)
        for i in range(files):
            data = f"tiny file {i}\n".encode()
            info = tarfile.TarInfo(f"t/d{i % 100:02}/f{i:06}")
            info.size, info.mode, info.mtime = len(data), 0o644, 1_700_000_000
            tf.addfile(info, io.BytesIO(data))


def best(runs: int, prepare: Callable[[], None], run: Callable[[], None]) -> float:
    times = []
    for _ in range(runs):
        prepare()
        subprocess.run(["sync"], check=True)
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    prepare()  # leave nothing behind: four trees of 100,000 files would exhaust the inodes
    return min(times)


def sh(*cmd: str, **kw: object) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(cmd, check=True, capture_output=True, **kw)  # type: ignore[call-overload, no-any-return]


def engine_apply(src: Path, dest: Path) -> None:
    from cs_core.archive.apply import ApplyOptions, apply_tar
    from cs_core.archive.compression import DigestReader, decompress_stream
    from cs_core.archive.tarsplit import TarSplitWriter

    with (
        open(src, "rb", buffering=0) as fh,
        open(dest.parent / "ts.gz", "wb") as tsf,
        gzip.GzipFile(fileobj=tsf, mode="wb", compresslevel=1) as gz,
    ):
        raw = DigestReader(fh)
        _, plain_stream = decompress_stream(raw)  # type: ignore[arg-type]
        plain = DigestReader(plain_stream)
        apply_tar(dest, plain, ApplyOptions(), TarSplitWriter(gz))  # type: ignore[arg-type]
        _ = raw.digest, plain.digest


def gzip_floor(src: Path) -> float:
    from isal import igzip

    t0 = time.perf_counter()
    with igzip.open(src, "rb") as fh:
        while fh.read(1 << 20):
            pass
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--driver", default="overlay", help="driver for the store rows (ours and Go's)")
    ap.add_argument("--size", default="6G")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root (loop filesystem, stores)")
    from cs_core.testing.loopfs import loop_filesystem

    with loop_filesystem("ext4", args.size) as mnt:
        work = mnt / "work"
        work.mkdir()
        big, tiny = work / "big.tar", work / "tiny.tar"
        print("generating workloads ...", file=sys.stderr)
        make_big(big)
        make_tiny(tiny)
        sh("gzip", "-k", "-6", str(big))
        sh("zstd", "-q", "-3", str(big), "-o", str(work / "big.tar.zst"))
        inputs = {
            "big plain": big,
            "big gzip": work / "big.tar.gz",
            "big zstd": work / "big.tar.zst",
            "tiny plain": tiny,
        }
        rows: list[tuple[str, float, float, float, float]] = []

        def fresh(path: Path) -> Callable[[], None]:
            def prep() -> None:
                if path.exists():
                    subprocess.run(["umount", "-R", "-l", str(path)], capture_output=True, check=False)
                    shutil.rmtree(path)
                path.mkdir(parents=True)

            return prep

        store_go, store_us, xdir, edir = work / "go", work / "us", work / "x", work / "e"
        for label, src in inputs.items():
            t_tar = best(args.runs, fresh(xdir), lambda src=src: sh("tar", "-xf", str(src), "-C", str(xdir)))
            t_eng = best(
                args.runs,
                fresh(edir),
                lambda src=src: engine_apply(src, edir / "root") if (edir / "root").mkdir() is None else None,
            )
            t_go = best(
                args.runs,
                fresh(store_go),
                lambda src=src: sh(
                    GO,
                    "-g",
                    str(store_go / "g"),
                    "-R",
                    str(store_go / "r"),
                    "-s",
                    args.driver,
                    "import-layer",
                    "-f",
                    str(src),
                ),
            )
            t_us = best(
                args.runs,
                fresh(store_us),
                lambda src=src: sh(
                    *OURS,
                    "-g",
                    str(store_us / "g"),
                    "-R",
                    str(store_us / "r"),
                    "-s",
                    args.driver,
                    "import-layer",
                    "-f",
                    str(src),
                ),
            )
            rows.append((label, t_tar, t_eng, t_go, t_us))
            print(
                f"{label}: tar {t_tar:.2f}s engine {t_eng:.2f}s go {t_go:.2f}s ours {t_us:.2f}s",
                file=sys.stderr,
            )
        floor = min(gzip_floor(work / "big.tar.gz") for _ in range(args.runs))

        # diff of the big layer, both CLIs, each on a layer it imported itself.
        def import_once(cmd: list[str], root: Path) -> str:
            fresh(root)()
            out = sh(
                *cmd,
                "-g",
                str(root / "g"),
                "-R",
                str(root / "r"),
                "-s",
                args.driver,
                "import-layer",
                "-f",
                str(big),
            ).stdout.decode()
            return out.split()[-1]

        go_id = import_once([GO], store_go)
        us_id = import_once(OURS, store_us)
        t_go_diff = best(
            args.runs,
            lambda: None,
            lambda: sh(
                GO,
                "-g",
                str(store_go / "g"),
                "-R",
                str(store_go / "r"),
                "-s",
                args.driver,
                "diff",
                "-u",
                "-f",
                str(work / "go.diff"),
                go_id,
            ),
        )
        t_us_diff = best(
            args.runs,
            lambda: None,
            lambda: sh(
                *OURS,
                "-g",
                str(store_us / "g"),
                "-R",
                str(store_us / "r"),
                "-s",
                args.driver,
                "diff",
                "-u",
                "-f",
                str(work / "us.diff"),
                us_id,
            ),
        )
        same = (work / "go.diff").read_bytes() == (work / "us.diff").read_bytes() == big.read_bytes()
        for root in (store_go, store_us):
            subprocess.run(["umount", "-R", "-l", str(root)], capture_output=True, check=False)

    print(
        f"\n{'workload':<12} {'tar -xf':>8} {'engine':>8} {'Go CLI':>8} {'ours':>8} "
        f"{'ours/Go':>8} {'ours/tar':>9} {'eng/Go':>7} {'eng/tar':>8}"
    )
    for label, t_tar, t_eng, t_go, t_us in rows:
        print(
            f"{label:<12} {t_tar:8.2f} {t_eng:8.2f} {t_go:8.2f} {t_us:8.2f} {t_us / t_go:8.2f} "
            f"{t_us / t_tar:9.2f} {t_eng / t_go:7.2f} {t_eng / t_tar:8.2f}"
        )
    gz = next(r for r in rows if r[0] == "big gzip")
    print(
        f"\ngzip decompression floor (isal, to nowhere): {floor:.2f}s; "
        f"ours/floor {gz[4] / floor:.2f}, engine/floor {gz[2] / floor:.2f}"
    )
    print(
        f"diff of the big layer: Go {t_go_diff:.2f}s ours {t_us_diff:.2f}s "
        f"ratio {t_us_diff / t_go_diff:.2f}; "
        f"both byte-identical to the input: {same}"
    )


if __name__ == "__main__":
    main()
