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
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

# usercache is eager (every store run loads it anyway), so that a process that drops
# privileges after importing this module can still use the parse cache.
from cs_core import recordclass
from cs_core.drivers.base import ConfigTable
from cs_core.errors import ConfigError, StorageError
from cs_core.goformat import go_quote, go_quote_list
from cs_core.model import IDMap
from cs_core.usercache import cache_path, read_trusted_json, stat_stamp, write_json
from cs_core.userns.idmap import parse_id_map as parse_id_map  # storage.conf's remap-uids; re-exported
from cs_core.userns.rootless import rootless_uid, uses_per_user_storage

if TYPE_CHECKING:
    from cs_core.drivers.base import GraphDriver

ROOTFUL_GRAPH_ROOT = "/var/lib/containers/storage"
ROOTFUL_RUN_ROOT = "/run/containers/storage"
SYSTEM_CONFIG = "/etc/containers/storage.conf"
VENDOR_CONFIG = "/usr/share/containers/storage.conf"
AUTO_NS_MIN_SIZE = 1024
AUTO_NS_MAX_SIZE = 65536
# Go's isRootlessDriver: the system file's drivers a rootless user inherits.
_GO_ROOTLESS_DRIVERS = ("btrfs", "overlay", "overlay2", "vfs")


@recordclass.frozen
class DriverTables:
    """storage.conf's ``[storage.options]``, kept until the driver is known (``resolve_driver``)."""

    options: Mapping[str, Any]
    path: str


@recordclass.define
class StoreOptions:
    """Everything needed to open a store (Go ``types.StoreOptions``)."""

    graph_root: str = ""
    run_root: str = ""
    driver_name: str = ""
    driver_options: list[str] = recordclass.field(factory=list)
    driver_priority: list[str] = recordclass.field(factory=list)
    image_store: str = ""
    rootless_storage_path: str = ""
    transient_store: bool = False
    uid_map: list[IDMap] = recordclass.field(factory=list)
    gid_map: list[IDMap] = recordclass.field(factory=list)
    root_auto_userns_user: str = ""
    auto_ns_min_size: int = AUTO_NS_MIN_SIZE
    auto_ns_max_size: int = AUTO_NS_MAX_SIZE
    pull_options: dict[str, str] = recordclass.field(factory=dict)
    disable_volatile: bool = False
    config_file: str = ""
    warnings: list[str] = recordclass.field(factory=list)
    #: Until ``resolve_driver``: the driver's own table is not yet in ``driver_options``.
    driver_tables: DriverTables | None = recordclass.field(default=None, eq=False, repr=False)

    @classmethod
    def load_default(cls, *, rootless: bool | None = None, resolve: bool = True) -> StoreOptions:
        """The options a tool gets with no flags: storage.conf plus environment.

        ``resolve=False`` leaves the driver as written and its table untranslated
        (``resolve_driver``), for callers that want only the roots: no plugin is loaded.
        """
        if rootless is None:
            rootless = is_rootless()
        path = default_config_file(rootless)
        if not rootless:
            opts = load_config_file(path, resolve=resolve)
            opts.graph_root = opts.graph_root or ROOTFUL_GRAPH_ROOT
            opts.run_root = opts.run_root or ROOTFUL_RUN_ROOT
            return opts
        return _rootless_options(path, resolve)


def is_rootless() -> bool:
    """Whether per-user storage applies: the one rule in cs_core.userns.rootless."""
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


def load_config_file(path: str, *, resolve: bool = True) -> StoreOptions:
    """Parse one storage.conf into options (missing file = built-in defaults)."""
    opts = StoreOptions(config_file=path)
    apply_config(opts, _config_data(path), path)
    return resolve_driver(opts) if resolve else opts


def _config_data(path: str) -> dict[str, Any]:
    """storage.conf's parsed tables: from the parse cache when it was made from this very
    file version (one stat), else parsed and cached. The cache spares every run tomllib's
    import and parse (~14M instructions, 6% of a light command); the options are still built
    from the tables each run, so the environment's overrides apply as before."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"reading {path}: {exc.strerror}") from exc
    cache = _parse_cache_file()
    if (data := _cached_tables(cache, _file_key(path, st))) is not None:
        return data
    try:
        with open(path, "rb") as fh:
            key = _file_key(path, os.fstat(fh.fileno()))  # the version read, not the one stat'd
            text = fh.read()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"reading {path}: {exc.strerror}") from exc
    data = _parse_toml(text, path) if text else {}
    _store_tables(cache, key, data)
    return data


def _parse_cache_file() -> str | None:
    """Per user (a cache another user could write must not steer our store)."""
    try:
        home = _home() if not os.environ.get("XDG_CACHE_HOME") else None
    except KeyError:  # no HOME and no passwd entry: no cache, not a failed run
        return None
    return cache_path("storage-conf.json", home)


def _file_key(path: str, st: os.stat_result) -> list[Any]:
    return [path, *stat_stamp(st)]


def _cached_tables(cache: str | None, key: list[Any]) -> dict[str, Any] | None:
    """The cached tables if the cache is ours, well formed and made from ``key``'s file;
    anything else (absent, corrupt, foreign, stale) is None: the caller reparses."""
    entry = read_trusted_json(cache)
    if not isinstance(entry, dict) or entry.get("key") != key:
        return None
    data = entry.get("data")
    return data if isinstance(data, dict) else None


def _store_tables(cache: str | None, key: list[Any], data: dict[str, Any]) -> None:
    """Best effort: a cache that cannot be written (read-only home, another user's HOME after
    dropping privileges, tables JSON cannot hold such as TOML dates) only costs the parse."""
    write_json(cache, {"key": key, "data": data}, allow_nan=False)


def _parse_toml(text: bytes, path: str) -> dict[str, Any]:
    # Imported here: most runs have no storage.conf, and tomllib costs ~10M instructions.
    import tomllib

    try:
        return tomllib.loads(text.decode())
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


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
    """Fill ``opts`` from a parsed storage.conf (then ``STORAGE_DRIVER``/``STORAGE_OPTS``)."""
    storage = _table(data, "storage", path, "[storage]")
    options = _table(storage, "options", path, "[storage.options]")
    unknown = [f"storage.{k}" for k in storage if k not in _KNOWN_STORAGE]
    unknown += [f"storage.options.{k}" for k in options if k not in _KNOWN_OPTIONS]
    if unknown:
        opts.warnings.append(f"Failed to decode the keys {go_quote_list(unknown)} from {go_quote(path)}")
    written = _str(storage, "driver", path)
    opts.driver_name = os.environ.get("STORAGE_DRIVER") or written
    _apply_storage_table(opts, storage, path)
    _apply_options_table(opts, options, path)
    # Go uses the literal driver value of the file as the prefix (".key" when empty).
    dopts = _common_driver_options(written, options, path)
    opts.driver_tables = DriverTables(options, path)
    if "STORAGE_OPTS" in os.environ:
        dopts = os.environ["STORAGE_OPTS"].split(",")
        opts.driver_tables = None
    opts.driver_options = [o for o in dopts if o]


def _table(data: Mapping[str, Any], key: str, path: str, what: str) -> dict[str, Any]:
    table = data.get(key, {})
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: {what} must be a table")
    return table


def _apply_storage_table(opts: StoreOptions, storage: Mapping[str, Any], path: str) -> None:
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


def _apply_options_table(opts: StoreOptions, options: Mapping[str, Any], path: str) -> None:
    """The ``[storage.options]`` keys that are not driver options."""
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
    pull = _table(options, "pull_options", path, "pull_options")
    opts.pull_options = {str(k): str(v) for k, v in pull.items()}
    opts.disable_volatile = bool(options.get("disable-volatile", False))


def _common_driver_options(prefix: str, options: Mapping[str, Any], path: str) -> list[str]:
    """``[storage.options]`` keys every driver gets, as ``<prefix>.<key>=<value>``."""
    dopts = [f"{prefix}.imagestore={store}" for store in options.get("additionalimagestores") or []]
    dopts += [f"{prefix}.additionallayerstore={store}"
              for store in options.get("additionallayerstores") or []]
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
    return dopts


def _driver_class(name: str) -> type[GraphDriver] | None:
    """The installed driver called ``name`` (or with that alias), if one loads."""
    if not name:
        return None
    from cs_core.drivers.plugins import default_registry

    try:
        return default_registry().driver_class(name)
    except StorageError:
        return None  # opening the store reports an unknown or broken driver


def resolve_driver(opts: StoreOptions) -> StoreOptions:
    """Let the configured driver's class name itself (Go's overlay2 → overlay) and translate
    its ``[storage.options.<driver>]`` table (Go GetGraphDriverOptions). Loads that driver's
    plugin, so it is done once the driver is wanted, not whenever defaults are computed."""
    tables, opts.driver_tables = opts.driver_tables, None
    cls = _driver_class(opts.driver_name)
    if cls is None:
        return opts
    if cls.name != opts.driver_name:
        opts.warnings.append(
            f"Switching default driver from {opts.driver_name} to the equivalent {cls.name} driver")
    opts.driver_name = cls.name
    if tables is not None:
        table = _table(tables.options, cls.name, tables.path, f"[storage.options.{cls.name}]")
        opts.driver_options += cls.config_options(
            ConfigTable(cls.name, table, tables.options, tables.path))
    return opts


def _rootless_options(path: str, resolve: bool) -> StoreOptions:
    uid = rootless_uid()
    if os.path.exists(path):
        opts = load_config_file(path, resolve=resolve)
    else:
        system = load_config_file(default_config_file(False), resolve=False)
        opts = StoreOptions(config_file=path)
        opts.rootless_storage_path = system.rootless_storage_path
        opts.pull_options = system.pull_options
        # Go's isRootlessDriver and its overlay rule, on the names as written: working out
        # the defaults loads no plugin (a process may compute them after dropping to a user
        # who cannot read where the plugins are installed).
        if system.driver_name in _GO_ROOTLESS_DRIVERS:
            opts.driver_name = system.driver_name
        if opts.driver_name in ("overlay", "overlay2"):
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


def from_flags(defaults: StoreOptions, graph_root: str | None, run_root: str | None,
               driver: str | None, driver_options: Sequence[str]) -> StoreOptions:
    """Go's rule for explicit roots, driver or driver options (its CLI and ``open_store``):
    they replace storage.conf entirely, which only fills in a root that was not given."""
    return StoreOptions(
        graph_root=graph_root or defaults.graph_root, run_root=run_root or defaults.run_root,
        driver_name=driver or "", driver_options=list(driver_options),
        config_file=defaults.config_file,
    )


def resolve_cli_options(
    graph_root: str | None = None,
    run_root: str | None = None,
    driver: str | None = None,
    storage_opts: Sequence[str] = (),
    image_store: str | None = None,
    transient_store: bool = False,
    defaults: StoreOptions | None = None,
) -> StoreOptions:
    """The CLI's options from its flags and ``defaults`` (storage.conf, read if not given)."""
    if not (graph_root or run_root or driver or storage_opts):
        opts = defaults or StoreOptions.load_default()
    else:
        opts = from_flags(defaults or StoreOptions.load_default(resolve=False),
                          graph_root, run_root, driver, storage_opts)
    if image_store:
        opts.image_store = image_store
    if transient_store:
        opts.transient_store = True
    opts.graph_root = str(Path(opts.graph_root).absolute())
    opts.run_root = str(Path(opts.run_root).absolute())
    return opts
