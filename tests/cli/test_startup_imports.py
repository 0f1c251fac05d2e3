"""The CLI's hot path stays lean: what a light command run imports, checked structurally.

Start-up time is mostly imports (bench/startup.py); these tests fail when a change pulls a
heavy module into every run, not when the machine is slow.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from cs_core.cli.commands import MODULE_OF

ROOT = Path(__file__).resolve().parents[2]

# Never needed by a command that only reads or creates records: each is imported by the
# operations that use it (content, codecs, namespaces, plugin metadata). click only declares
# plugin commands and builds docs; cattrs is the codec's fallback for records its fast plans
# do not recognise; attrs only describes our record classes to code that imports it itself
# (cs_core.recordclass); logging loads when something logs (cs_core.lazylog), traceback
# when an error is described; pluggy (and inspect) when a plugin's hooks need more than a
# plain call (cs_core.drivers.markers); tomllib when a storage.conf is new or changed
# (cs_core.config caches its parse).
HEAVY = [
    "click", "cattrs", "attr", "attrs", "logging", "traceback", "pluggy", "inspect", "tomllib",
    "importlib.metadata", "tarfile",
    "gzip", "zstandard", "isal", "zipfile", "argparse", "email",
    "asyncio", "concurrent.futures", "multiprocessing", "ctypes.util",
    "cs_core.userns.unshare", "cs_core.store.check", "cs_core.dedup", "cs_core.archive.tarreader",
    "cs_core.store.staged", "cs_overlay.driver", "cs_btrfs.driver",
    # Progress reporting (a thread) is for import-layer and applydiff.
    "cs_core.cli.progress",
]
# Other plugins' entry-point modules (cs_overlay.hooks: thin by contract, ~0.3 ms each) are
# imported on every store open, so that observer plugins see it (cs_store_opened); their
# drivers are not.

# Command modules that import another's helpers at import time (none: set-metadata imports
# create's metadata reader when it runs).
SHARED: dict[str, tuple[str, ...]] = {}

PROBE = """
import json, sys
from cs_core.cli.main import run
code = run(sys.argv[1:])
print(json.dumps([code, sorted(sys.modules)]))
"""


def _run(tmp_path: Path, *args: str, check: bool = False,
         conf: Path | None = None) -> subprocess.CompletedProcess[str]:
    # By default a storage.conf that does not exist: the run must not parse one it does not have.
    env = {"CONTAINERS_STORAGE_CONF": str(conf or tmp_path / "none.conf"), "PATH": "/usr/bin:/bin",
           "XDG_CACHE_HOME": str(tmp_path / "cache")}
    flags = ["-g", str(tmp_path / "g"), "--run", str(tmp_path / "r"), "-s", "vfs"]
    return subprocess.run([sys.executable, "-c", PROBE, *flags, *args], capture_output=True,
                          text=True, cwd=tmp_path, env=env, timeout=60, check=check)


def _modules_after(tmp_path: Path, *args: str, conf: Path | None = None) -> set[str]:
    proc = _run(tmp_path, *args, check=True, conf=conf)
    code, modules = json.loads(proc.stdout.splitlines()[-1])
    assert code == 0, proc.stderr
    return set(modules)


@pytest.fixture(scope="module")
def small_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store holding a layer chain, an image and a container: light commands read real
    records (an empty file is never decoded at all)."""
    tmp_path = tmp_path_factory.mktemp("store")
    base = _run(tmp_path, "create-layer", "-i", "a" * 64, check=True)
    assert base.returncode == 0, base.stderr
    _run(tmp_path, "create-layer", "-i", "b" * 64, "a" * 64, check=True)
    _run(tmp_path, "create-image", "-i", "c" * 64, "-n", "img", "b" * 64, check=True)
    _run(tmp_path, "create-container", "-i", "d" * 64, "-n", "ctr", "img", check=True)
    return tmp_path


@pytest.mark.parametrize("command", [
    ["version"], ["layers"], ["layers", "--json"], ["images", "--json"], ["containers"],
    ["exists", "img"], ["get-names", "ctr"], ["metadata", "img"], ["create-layer"],
    ["create-image", "a" * 64], ["create-container", "img"],
], ids=" ".join)
def test_a_light_command_imports_no_heavy_module(small_store: Path, command: list[str]) -> None:
    loaded = _modules_after(small_store, *command)
    assert [m for m in HEAVY if m in loaded] == []
    family = MODULE_OF[command[0]]
    allowed = {family, *SHARED.get(family, ())}
    assert {m for m in loaded if m.startswith("cs_core.cli.commands.")} == {
        f"cs_core.cli.commands.{m}" for m in allowed}  # only the dispatched command's module


def test_mount_and_unmount_import_no_heavy_module(small_store: Path) -> None:
    """Both read ``mountpoints.json`` (unmount after mount finds a record in it)."""
    mounted = _modules_after(small_store, "mount", "ctr")
    unmounted = _modules_after(small_store, "unmount", "ctr")
    assert [m for m in HEAVY if m in mounted | unmounted] == []


def test_a_storage_conf_is_parsed_once_per_version(small_store: Path) -> None:
    """tomllib (import and parse, ~6% of a light command) runs only when the file is new or
    changed: later runs read the parse cache, keyed by the file's stat."""
    conf = small_store / "storage.conf"
    conf.write_text('[storage]\ndriver = "vfs"\n[storage.options]\nmountopt = "nodev"\n')
    assert "tomllib" in _modules_after(small_store, "layers", conf=conf)
    assert "tomllib" not in _modules_after(small_store, "layers", conf=conf)
    conf.write_text('[storage]\ndriver = "vfs"\n')
    assert "tomllib" in _modules_after(small_store, "layers", conf=conf)


def test_an_uncompressed_diff_loads_no_compression_codec(small_store: Path) -> None:
    """isal and zstandard are imported by the first stream that needs them, not by the
    compression module itself: a plain diff, import or export never pays for them."""
    loaded = _modules_after(small_store, "diff", "-u", "-f", str(small_store / "d.tar"), "b" * 64)
    assert "cs_core.archive.compression" in loaded
    assert [m for m in ("isal", "zstandard") if m in loaded] == []


def test_a_corrupt_record_is_reported_without_cattrs_loaded_first(tmp_path: Path) -> None:
    """The fallback converter imports cattrs only when a record needs it, and its errors are
    still the one-line corrupt-file message (the error tuple is built after the failure)."""
    _run(tmp_path, "create-layer", "-i", "a" * 64, check=True)
    _run(tmp_path, "create-image", "-i", "c" * 64, "a" * 64, check=True)
    images = tmp_path / "g" / "vfs-images" / "images.json"
    images.write_text(images.read_text().replace('"created"', '"big-data-sizes":{"k":"x"},"created"'))
    proc = _run(tmp_path, "images")
    code, modules = json.loads(proc.stdout.splitlines()[-1])
    assert code == 1 and "cattrs" in modules  # the converter did the failing conversion
    assert proc.stderr == (f'loading {images}: field "big-data-sizes": expected an integer, '
                           f"got 'x': corrupt bookkeeping file; restore {images} from a backup, "
                           "or move it aside, which forgets its images (their layers stay)\n")


@pytest.fixture(scope="module")
def binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("zipapp") / "containers-storage"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "build_binary.py"), str(path)],
                   check=True, capture_output=True)
    return path


def test_the_zipapp_carries_bytecode_for_every_module(binary: Path) -> None:
    with zipfile.ZipFile(binary) as archive:
        # The interpreter parses the outer directory on every start: it holds only the boot.
        assert sorted(archive.namelist()) == ["__main__.py", "_cs_zipapp_boot.py",
                                              "_cs_zipapp_boot.pyc", "payload.zip"]
        with archive.open("payload.zip") as inner, zipfile.ZipFile(inner) as payload:
            names = set(payload.namelist())
    sources = {n for n in names if n.endswith(".py")}
    assert sources and {n for n in sources if n + "c" not in names} == set()
    assert "cs_core/cli/main.pyc" in names


def test_the_zipapp_finds_its_driver_without_importlib_metadata(small_store: Path, binary: Path,
                                                                tmp_path: Path) -> None:
    """Run from its unpacked copy, the binary imports no more than the installed script
    (no email, zipfile, csv): the copy is a plain directory of modules and dist-info."""
    env = {"CONTAINERS_STORAGE_CONF": str(small_store / "none.conf"), "PATH": "/usr/bin:/bin",
           "XDG_CACHE_HOME": str(tmp_path / "cache")}
    flags = ["-g", str(small_store / "g"), "--run", str(small_store / "r"), "-s", "vfs"]
    # -S: the venv's editable installs would serve cs_core from the checkout, not the zip.
    argv = [sys.executable, "-S", "-X", "importtime", str(binary), *flags, "layers"]
    first = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60, check=False)
    assert first.returncode == 0, first.stderr  # this one unpacked the payload
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines()
                if line.startswith("import time:")}
    assert "cs_vfs.driver" in imported  # the driver came through its entry point
    assert [m for m in [*HEAVY, "importlib.metadata", "csv"] if m in imported] == []
    assert "zipfile" in {line.rsplit("|", 1)[-1].strip() for line in first.stderr.splitlines()
                         if line.startswith("import time:")}


EXIT_PROBE = """
import atexit, os, sys, threading, time
from cs_core.cli import main as cli_main

class Witness:
    def __del__(self):
        os.write(2, b"torn down\\n")

cli_main.witness = Witness()  # a module global: freed only by the interpreter's tear-down
atexit.register(lambda: os.write(2, b"exit handler ran\\n"))
if sys.argv[1] == "thread":
    threading.Thread(target=lambda: (time.sleep(0.2), os.write(2, b"thread done\\n"))).start()
sys.argv = ["cs-exit-probe", *sys.argv[2:]]  # argv[0] is not read
cli_main.main()
"""


@pytest.mark.parametrize("thread", [False, True], ids=["alone", "with a thread"])
def test_the_program_skips_the_tear_down_but_not_exit_handlers(tmp_path: Path, thread: bool) -> None:
    flags = ["-g", str(tmp_path / "g"), "--run", str(tmp_path / "r"), "-s", "vfs"]
    env = {"CONTAINERS_STORAGE_CONF": str(tmp_path / "none.conf"), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-c", EXIT_PROBE, "thread" if thread else "-",
                           *flags, "layers", "extra"], capture_output=True, text=True,
                          env=env, timeout=60, check=False)
    assert proc.returncode == 1  # the command's status, as sys.exit gives it
    assert proc.stdout.startswith("layers: too many arguments ([extra]).\nUsage:")
    assert "exit handler ran\n" in proc.stderr
    # A live thread is waited for, as by a normal exit, and then the tear-down happens.
    assert ("thread done\n" in proc.stderr) == thread
    assert ("torn down\n" in proc.stderr) == thread
