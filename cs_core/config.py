"""Store configuration: storage.conf, environment overrides, rootful and rootless defaults.

Follows the Go library's ``types/options.go``: one config file is chosen (never merged), its
``[storage]`` keys replace the built-in defaults, ``[storage.options]`` and the driver
sub-tables become driver option strings ``<driver>.<key>=<value>``, and ``STORAGE_DRIVER`` /
``STORAGE_OPTS`` override the file.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import stat
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from cs_core.errors import ConfigError
from cs_core.model import IDMap
from cs_core.rootless import rootless_uid, uses_per_user_storage

ROOTFUL_GRAPH_ROOT = "/var/lib/containers/storage"
ROOTFUL_RUN_ROOT = "/run/containers/storage"
SYSTEM_CONFIG = "/etc/containers/storage.conf"
VENDOR_CONFIG = "/usr/share/containers/storage.conf"
AUTO_NS_MIN_SIZE = 1024
AUTO_NS_MAX_SIZE = 65536


@attrs.define
class StoreOptions:
    """Everything needed to open a store (Go ``types.StoreOptions``)."""

    graph_root: str = ""
    run_root: str = ""
    driver_name: str = ""
    driver_options: list[str] = attrs.field(factory=list)
    driver_priority: list[str] = attrs.field(factory=list)
    image_store: str = ""
    rootless_storage_path: str = ""
    transient_store: bool = False
    uid_map: list[IDMap] = attrs.field(factory=list)
    gid_map: list[IDMap] = attrs.field(factory=list)
    root_auto_userns_user: str = ""
    auto_ns_min_size: int = AUTO_NS_MIN_SIZE
    auto_ns_max_size: int = AUTO_NS_MAX_SIZE
    pull_options: dict[str, str] = attrs.field(factory=dict)
    disable_volatile: bool = False
    config_file: str = ""
    warnings: list[str] = attrs.field(factory=list)

    @classmethod
    def load_default(cls, *, rootless: bool | None = None) -> StoreOptions:
        """The options a tool gets with no flags: storage.conf plus environment."""
        if rootless is None:
            rootless = is_rootless()
        path = default_config_file(rootless)
        if not rootless:
            opts = load_config_file(path)
            opts.graph_root = opts.graph_root or ROOTFUL_GRAPH_ROOT
            opts.run_root = opts.run_root or ROOTFUL_RUN_ROOT
            return opts
        return _rootless_options(path)


def is_rootless() -> bool:
    """Whether per-user storage applies: the one rule in cs_core.rootless."""
    return uses_per_user_storage()


def default_config_file(rootless: bool) -> str:
    """Which storage.conf is read (Go ``DefaultConfigFile``)."""
    if env := os.environ.get("CONTAINERS_STORAGE_CONF"):
        return env
    if rootless:
        config_home = os.environ.get("XDG_CONFIG_HOME") or os.path.join(_home(), ".config")
        return os.path.join(config_home, "containers", "storage.conf")
    if os.path.exists(SYSTEM_CONFIG):
        return SYSTEM_CONFIG
    return VENDOR_CONFIG


def _home() -> str:
    return os.environ.get("HOME") or pwd.getpwuid(rootless_uid()).pw_dir


def _str(table: Mapping[str, Any], key: str, where: str) -> str:
    value = table.get(key, "")
    if not isinstance(value, str):
        raise ConfigError(f"{where}: key {key!r} must be a string, not {type(value).__name__}")
    return value


def _expand(path: str, uid: int) -> str:
    path = path.replace("$UID", str(uid))
    return os.path.expandvars(path)


def load_config_file(path: str) -> StoreOptions:
    """Parse one storage.conf into options (missing file = built-in defaults)."""
    opts = StoreOptions(config_file=path)
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        data = {}
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    except OSError as exc:
        raise ConfigError(f"reading {path}: {exc.strerror}") from exc
    apply_config(opts, data, path)
    return opts


_KNOWN_STORAGE = {
    "driver", "driver_priority", "runroot", "graphroot", "imagestore", "rootless_storage_path",
    "transient_store", "options",
}
_KNOWN_OPTIONS = {
    "additionalimagestores", "additionallayerstores", "size", "mount_program", "skip_mount_home",
    "ignore_chown_errors", "force_mask", "mountopt", "remap-user", "remap-group", "remap-uids",
    "remap-gids", "root-auto-userns-user", "auto-userns-min-size", "auto-userns-max-size",
    "disable-volatile", "pull_options", "imagestore", "use_composefs", "overlay", "vfs", "btrfs",
    "zfs", "aufs", "thinpool",
}


def apply_config(opts: StoreOptions, data: Mapping[str, Any], path: str) -> None:
    storage = data.get("storage", {})
    if not isinstance(storage, dict):
        raise ConfigError(f"{path}: [storage] must be a table")
    unknown = [f"storage.{k}" for k in storage if k not in _KNOWN_STORAGE]
    options = storage.get("options", {})
    if not isinstance(options, dict):
        raise ConfigError(f"{path}: [storage.options] must be a table")
    unknown += [f"storage.options.{k}" for k in options if k not in _KNOWN_OPTIONS]
    if unknown:
        opts.warnings.append(f"Failed to decode the keys {unknown!r} from {path!r}")

    driver = _str(storage, "driver", path)
    if env_driver := os.environ.get("STORAGE_DRIVER"):
        driver = env_driver
    opts.driver_name = "overlay" if driver == "overlay2" else driver
    prio = storage.get("driver_priority", [])
    if not isinstance(prio, list) or not all(isinstance(p, str) for p in prio):
        raise ConfigError(f"{path}: driver_priority must be a list of strings")
    opts.driver_priority = list(prio)
    opts.run_root = _str(storage, "runroot", path)
    opts.graph_root = _str(storage, "graphroot", path)
    opts.image_store = _str(storage, "imagestore", path)
    opts.rootless_storage_path = _str(storage, "rootless_storage_path", path)
    transient = storage.get("transient_store", False)
    if not isinstance(transient, bool):
        raise ConfigError(f"{path}: transient_store must be a boolean")
    opts.transient_store = transient
    if opts.image_store and opts.graph_root and os.path.abspath(opts.image_store) == os.path.abspath(
        opts.graph_root
    ):
        raise ConfigError(
            f"imagestore {opts.image_store} must either be not set or be a different than "
            f"graphroot {opts.graph_root}"
        )

    # Go uses the literal driver value of the file as the prefix (".key" when empty).
    prefix = driver
    dopts: list[str] = []
    for store in options.get("additionalimagestores", []) or []:
        dopts.append(f"{prefix}.imagestore={store}")
    for store in options.get("additionallayerstores", []) or []:
        dopts.append(f"{prefix}.additionallayerstore={store}")
    for key in ("size", "mount_program", "skip_mount_home", "ignore_chown_errors"):
        if value := _str(options, key, path):
            dopts.append(f"{prefix}.{key}={value}")
    force_mask = options.get("force_mask", 0)
    if isinstance(force_mask, str):
        force_mask = int(force_mask, 8) if force_mask else 0
    if force_mask:
        dopts.append(f"{prefix}.force_mask={force_mask:o}")
    if mountopt := _str(options, "mountopt", path):
        dopts.append(f"{prefix}.mountopt={mountopt}")

    opts.uid_map = parse_id_map(_str(options, "remap-uids", path), "remap-uids")
    opts.gid_map = parse_id_map(_str(options, "remap-gids", path), "remap-gids")
    opts.root_auto_userns_user = _str(options, "root-auto-userns-user", path)
    for key, attr in (("auto-userns-min-size", "auto_ns_min_size"),
                      ("auto-userns-max-size", "auto_ns_max_size")):
        value = options.get(key, 0)
        if not isinstance(value, int):
            raise ConfigError(f"{path}: {key} must be an integer")
        if value > 0:
            setattr(opts, attr, value)
    pull = options.get("pull_options", {})
    if not isinstance(pull, dict):
        raise ConfigError(f"{path}: pull_options must be a table")
    opts.pull_options = {str(k): str(v) for k, v in pull.items()}
    opts.disable_volatile = bool(options.get("disable-volatile", False))
    dopts += driver_table_options(opts.driver_name, options, path)
    if "STORAGE_OPTS" in os.environ:
        dopts = os.environ["STORAGE_OPTS"].split(",")
    opts.driver_options = [o for o in dopts if o]


def driver_table_options(driver: str, options: Mapping[str, Any], path: str) -> list[str]:
    """Translate ``[storage.options.<driver>]`` into option strings (Go GetGraphDriverOptions)."""
    table = options.get(driver if driver != "overlay2" else "overlay", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [storage.options.{driver}] must be a table")
    out: list[str] = []

    def emit(key: str, fallback: bool = True) -> None:
        value = _str(table, key, path) or (_str(options, key, path) if fallback else "")
        if value:
            out.append(f"{driver}.{key}={value}")

    if driver in ("overlay", "overlay2"):
        for key in ("ignore_chown_errors", "mount_program", "mountopt", "size"):
            emit(key)
        emit("inodes", fallback=False)
        emit("skip_mount_home")
        emit("use_composefs", fallback=False)
        mask = table.get("force_mask", "")
        if mask:
            out.append(f"{driver}.force_mask={mask}")
    elif driver == "btrfs":
        if value := _str(table, "min_space", path):
            return [f"{driver}.min_space={value}"]
        emit("size")
    elif driver == "vfs":
        emit("ignore_chown_errors")
    elif driver == "zfs":
        emit("fsname", fallback=False)
        emit("mountopt")
        emit("size")
    elif driver == "aufs":
        emit("mountopt")
    return out


_MAP_RE = re.compile(r"^\d+(:\d+:\d+)*$")


def parse_id_map(text: str, name: str) -> list[IDMap]:
    """Parse ``cid:hid:size[:cid:hid:size...]`` (Go ``idtools.ParseIDMap``)."""
    if not text:
        return []
    maps: list[IDMap] = []
    for part in text.split(","):
        fields = part.split(":")
        if len(fields) % 3 or not all(f.isdigit() for f in fields):
            raise ConfigError(
                f'initializing ID mappings: {name} setting is malformed expected '
                f'["uint32:uint32:uint32"]: {part!r}'
            )
        for i in range(0, len(fields), 3):
            maps.append(IDMap(int(fields[i]), int(fields[i + 1]), int(fields[i + 2])))
    return maps


def _rootless_options(path: str) -> StoreOptions:
    uid = rootless_uid()
    if os.path.exists(path):
        opts = load_config_file(path)
    else:
        system = load_config_file(default_config_file(False))
        opts = StoreOptions(config_file=path)
        opts.rootless_storage_path = system.rootless_storage_path
        opts.pull_options = system.pull_options
        if system.driver_name in ("btrfs", "overlay", "vfs"):
            opts.driver_name = system.driver_name
        if opts.driver_name == "overlay":
            opts.driver_options = [o for o in system.driver_options if "ignore_chown_errors" in o]
        if "STORAGE_OPTS" in os.environ:
            opts.driver_options += [o for o in os.environ["STORAGE_OPTS"].split(",") if o]
    if env_driver := os.environ.get("STORAGE_DRIVER"):
        opts.driver_name = env_driver
    if not opts.run_root:
        opts.run_root = rootless_run_dir(uid)
    if not opts.graph_root:
        if opts.rootless_storage_path:
            opts.graph_root = _expand(opts.rootless_storage_path, uid)
        else:
            data_home = os.environ.get("XDG_DATA_HOME") or os.path.join(_home(), ".local", "share")
            opts.graph_root = os.path.join(data_home, "containers", "storage")
    if not opts.driver_name:
        opts.driver_name = _rootless_driver(opts)
    return opts


def _rootless_driver(opts: StoreOptions) -> str:
    try:
        for entry in sorted(os.listdir(opts.graph_root)):
            if entry.endswith("-images"):
                return entry[: -len("-images")]
    except OSError:
        pass
    return "overlay"


def rootless_run_dir(uid: int) -> str:
    """The per-user run root (Go ``homedir.GetRuntimeDir`` plus ``containers``).

    A candidate directory counts only if it is ours alone: owned by our *effective* UID (inside
    the ``--unshare`` namespace that is 0, and the user's own directories show as owned by 0)
    with mode 0700. Anything else, such as a /tmp directory another user made first, could let
    that user into our runtime state, so we move on to the next candidate.
    """
    if runtime := os.environ.get("XDG_RUNTIME_DIR"):
        return os.path.join(runtime, "containers")
    # /run/user/<uid> is logind's to create; Go tries too, but only root could, and a test
    # faking a rootless UID as root must not litter the host's /run/user.
    run_user = f"/run/user/{uid}"
    if _private_dir(run_user):
        return os.path.join(run_user, "containers")
    tmp = os.path.join(os.environ.get("TMPDIR") or "/tmp", f"storage-run-{uid}")
    with contextlib.suppress(OSError):
        os.mkdir(tmp, 0o700)
    if _private_dir(tmp):
        return os.path.join(tmp, "containers")
    return os.path.join(os.path.realpath(_home()), "rundir", "containers")


def _private_dir(path: str) -> bool:
    try:
        st = os.lstat(path)  # a symlink is never private: its target could be anyone's
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and \
        stat.S_IMODE(st.st_mode) == 0o700


def resolve_cli_options(
    graph_root: str | None = None,
    run_root: str | None = None,
    driver: str | None = None,
    storage_opts: Sequence[str] = (),
    image_store: str | None = None,
    transient_store: bool = False,
) -> StoreOptions:
    """The CLI's rule: storage.conf only when no root/driver flag was given (Go CLI quirk:
    with any of them, only the flags plus a default for a missing root are used)."""
    defaults = StoreOptions.load_default()
    if not (graph_root or run_root or driver or storage_opts):
        opts = defaults
    else:
        opts = StoreOptions(
            graph_root=graph_root or defaults.graph_root,
            run_root=run_root or defaults.run_root,
            driver_name=driver or "",
            driver_options=list(storage_opts),
            config_file=defaults.config_file,
        )
    if image_store:
        opts.image_store = image_store
    if transient_store:
        opts.transient_store = True
    opts.graph_root = str(Path(opts.graph_root).absolute())
    opts.run_root = str(Path(opts.run_root).absolute())
    return opts
