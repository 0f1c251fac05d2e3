#!/usr/bin/env python3
"""Build a single-file ``containers-storage`` executable (a zipapp).

Its payload holds cs_core, every installed cs_core driver distribution (found through the
``cs_core`` entry-point group, with their dist-info so the entry points still resolve) and the
pure-Python dependencies, each module beside its bytecode, stored, not deflated. The payload is
one member of the archive, unpacked once per user and binary into a cache the boot module
trusts (scripts/zipapp_boot.py): importing from a directory is cheaper than through zipimport.
Compiled extensions are left out (zstandard, isal): the binary uses them when the target
system has them.
"""

from __future__ import annotations

import importlib.util
import py_compile
import shutil
import sys
import tempfile
import zipapp
import zipfile
from importlib import metadata
from pathlib import Path

from zipapp_boot import PAYLOAD  # the member the boot module opens (this script's directory)

from cs_core.drivers.entrypoints import ZIP_INDEX

PURE_DEPENDENCIES = ["pluggy", "attrs", "attr", "cattrs", "cattr", "click", "typing_extensions"]
COMPILED = {"zstandard", "isal"}
BOOT_MODULE = "_cs_zipapp_boot"


def _copy_module(name: str, dest: Path) -> None:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        raise SystemExit(f"build_binary: cannot find module {name!r}; is it installed?")
    origin = Path(spec.origin)
    if spec.submodule_search_locations:
        src = Path(next(iter(spec.submodule_search_locations)))
        shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    else:
        shutil.copy2(origin, dest / origin.name)


def _copy_dist_info(dist: metadata.Distribution, dest: Path) -> None:
    name = dist.metadata["Name"].replace("-", "_")
    target = dest / f"{name}-{dist.version}.dist-info"
    target.mkdir()
    for fname in ("METADATA", "entry_points.txt"):
        text = dist.read_text(fname)
        if text is not None:
            (target / fname).write_text(text)


def _compile_all(staging: Path) -> None:
    """Bytecode where zipimport looks for it (``mod.pyc`` beside ``mod.py``, not __pycache__).

    Unchecked hash-based: zip members' times are only 2 s precise, and the archive is never
    edited in place; an interpreter of another version ignores them and compiles the sources.
    """
    for source in staging.rglob("*.py"):
        if source.parent == staging and source.name == "__main__.py":
            continue  # zipapp runs __main__ from source
        py_compile.compile(str(source), cfile=str(source.with_suffix(".pyc")), doraise=True,
                           invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)


def _stage_payload(staging: Path) -> None:
    """cs_core, its installed drivers (with their dist-info, so the entry points resolve) and
    the pure-Python dependencies, each module beside its bytecode."""
    _copy_module("cs_core", staging)
    _copy_dist_info(metadata.distribution("cs-core"), staging)
    for ep in metadata.entry_points(group="cs_core"):
        package = ep.value.split(".")[0].split(":")[0]
        if not (staging / package).exists():
            _copy_module(package, staging)
        if ep.dist is not None:
            info = staging / f"{ep.dist.metadata['Name'].replace('-', '_')}-{ep.dist.version}.dist-info"
            if not info.exists():
                _copy_dist_info(ep.dist, staging)
    for dep in PURE_DEPENDENCIES:
        if importlib.util.find_spec(dep) is not None:
            _copy_module(dep, staging)
    # With the payload itself on sys.path, cs_core finds its plugins' entry points from this
    # list without importlib.metadata (~20 ms of email, zipfile and csv imports per run).
    (staging / ZIP_INDEX).write_text(
        "".join(f"{p.name}\n" for p in sorted(staging.glob("*.dist-info"))))
    _compile_all(staging)


def build(output: Path) -> None:
    """The archive holds ``__main__``, the boot module and the payload zip: the interpreter
    parses the outer zip's directory on every start, so it is kept to three members
    (scripts/zipapp_boot.py says why and how the payload is run)."""
    with tempfile.TemporaryDirectory() as tmp:
        payload, outer = Path(tmp) / "payload", Path(tmp) / "outer"
        payload.mkdir()
        outer.mkdir()
        _stage_payload(payload)
        with zipfile.ZipFile(outer / PAYLOAD, "w", zipfile.ZIP_STORED) as zf:
            for path in sorted(payload.rglob("*")):
                if path.is_file():
                    zf.write(path, path.relative_to(payload).as_posix())
        shutil.copy2(Path(__file__).with_name("zipapp_boot.py"), outer / f"{BOOT_MODULE}.py")
        (outer / "__main__.py").write_text(f"import {BOOT_MODULE}\n{BOOT_MODULE}.run()\n")
        _compile_all(outer)  # __main__ runs from source on every start: it only hands over
        zipapp.create_archive(outer, output, interpreter="/usr/bin/env python3", compressed=False)
    output.chmod(0o755)
    print(f"built {output} ({output.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    build(Path(sys.argv[1] if len(sys.argv) > 1 else "containers-storage"))
