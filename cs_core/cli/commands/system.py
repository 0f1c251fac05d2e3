"""The store as a whole and the tool itself: status, version, wipe, shutdown, gc, plugins,
config, unshare."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cs_core.cli.command import CommandError, Env, command, json_option, option
from cs_core.cli.output import describe, emit_json, err, go_list, out
from cs_core.errors import StorageError


@command("status", "Check on graph driver status", max_args=0)
@json_option
def status(env: Env, args: tuple[str, ...], json_output: bool) -> int:
    store = env.store()
    pairs: list[tuple[str, str]] = [
        ("Root", str(store.graph_root)), ("Run Root", str(store.run_root)),
        ("Driver Name", store.driver_name), ("Driver Options", go_list(store.graph_options)),
    ]
    try:
        pairs += list(store.status())
    except (StorageError, OSError) as exc:
        err(f"status: {describe(exc)}\n")
        return 1
    if json_output:
        emit_json([list(p) for p in pairs])
    else:
        # Go writes the status to stderr.
        err("".join(f"{k}: {v}\n" for k, v in pairs))
    return 0


@command("version", "Return containers-storage version information", max_args=0)
@json_option
def version(env: Env, args: tuple[str, ...], json_output: bool) -> int:
    pairs = env.store().version()
    if json_output:
        emit_json([list(p) for p in pairs])
    else:
        err("".join(f"{k}: {v}\n" for k, v in pairs))
    return 0


def _run_json_or_error(action: str, call: Callable[[], object], json_output: bool) -> int:
    try:
        call()
    except (StorageError, OSError) as exc:
        if json_output:
            # Go encodes the error value itself, which has no exported fields.
            emit_json({})
        else:
            err(f"{action}: {describe(exc)}\n")
        return 1
    if json_output:
        emit_json("")
    return 0


@command("wipe", "Wipe all layers, images, and containers", max_args=0)
@json_option
def wipe(env: Env, args: tuple[str, ...], json_output: bool) -> int:
    return _run_json_or_error("wipe", env.store().wipe, json_output)


@command("shutdown", "Shut down layer storage", max_args=0)
@json_option
@option("--force", "-f", is_flag=True, help="Unmount mounted layers first")
def shutdown(env: Env, args: tuple[str, ...], json_output: bool, force: bool) -> int:
    store = env.store()
    return _run_json_or_error("shutdown", lambda: store.shutdown(force), json_output)


@command("gc", "Remove storage data that no record refers to", max_args=0)
@json_option
def gc(env: Env, args: tuple[str, ...], json_output: bool) -> int:
    store = env.store()

    def collect() -> None:
        store.garbage_collect()
        store.shutdown(True)  # Go's gc command shuts the store down on exit

    return _run_json_or_error("gc", collect, json_output)


@command("plugins", "List plugins, their drivers, versions and load errors", max_args=0,
         needs_store=False)
@json_option
def plugins(env: Env, args: tuple[str, ...], json_output: bool) -> int:
    from cs_core.drivers.plugins import default_registry

    registry = default_registry()
    registry.load_all()
    infos = sorted(registry.plugins.values(), key=lambda p: p.name)
    if json_output:
        emit_json([
            {"name": p.name, "module": p.module, "distribution": p.distribution,
             "version": p.version, "loaded": p.loaded, "blocked": p.blocked,
             "drivers": sorted(p.drivers), "error": p.error or ""}
            for p in infos
        ])
        return 0
    if not infos:
        from cs_core.driver_hints import PACKAGES

        out("no plugins installed (so no graph drivers): pip install "
            f"{' or '.join(PACKAGES.values())}\n")
        return 0
    lines: list[str] = []
    for p in infos:
        state = "blocked" if p.blocked else "error" if p.error else "loaded" if p.loaded else "not loaded"
        dist = f"{p.distribution} {p.version}".strip() or "-"
        lines.append(f"{p.name}: {state} ({dist}; {p.module})\n")
        if p.drivers:
            lines.append(f"\tdrivers: {', '.join(sorted(p.drivers))}\n")
        if p.error:
            lines.append(f"\terror: {p.error}\n")
    out("".join(lines))
    return 0


def _go_store_options(opts: Any) -> dict[str, Any]:
    """Go's ``StoreOptions`` JSON (its struct tags), omitting empty fields as Go does."""
    from cs_core.codec import converter

    doc: dict[str, Any] = {
        "runroot": opts.run_root, "root": opts.graph_root, "imagestore": opts.image_store,
        "RootlessStoragePath": opts.rootless_storage_path,
        "transient_store": opts.transient_store, "driver": opts.driver_name,
        "driver-priority": list(opts.driver_priority), "driver-options": list(opts.driver_options),
        "uidmap": converter.unstructure(list(opts.uid_map)),
        "gidmap": converter.unstructure(list(opts.gid_map)),
        "root_auto_ns_user": opts.root_auto_userns_user,
        "auto_userns_min_size": opts.auto_ns_min_size, "auto_userns_max_size": opts.auto_ns_max_size,
        "PullOptions": dict(sorted(opts.pull_options.items())) or None,
        "disable-volatile": opts.disable_volatile,
    }
    keep_empty = {"RootlessStoragePath", "PullOptions"}  # untagged in Go: never omitted
    return {k: v for k, v in doc.items() if k in keep_empty or v not in ("", [], False, 0, None)}


@command("config", "Print the effective storage configuration as JSON",
         options_help="[options [...]] [configFile]", max_args=1, needs_store=False)
def config(env: Env, args: tuple[str, ...]) -> int:
    from cs_core.config import StoreOptions, apply_config, resolve_driver

    opts = StoreOptions.load_default()
    if args:
        import tomllib

        with open(args[0], "rb") as f:
            try:
                data = tomllib.load(f)
            except tomllib.TOMLDecodeError as exc:
                raise CommandError(f"{args[0]}: {exc}") from exc
        apply_config(opts, data, args[0])
        resolve_driver(opts)
    emit_json(_go_store_options(opts))
    return 0


@command("unshare", "Run a command in a user namespace",
         options_help="[options [...]] [command [...]]", needs_store=False)
def unshare(env: Env, args: tuple[str, ...]) -> int:
    import os
    import subprocess

    from cs_core.userns import unshare as unshare_ns

    if unshare_ns.needs_reexec():
        # Even with --unshare=false, as Go: this command is about the namespace.
        return unshare_ns.reexec_self()
    argv = list(args) or [os.environ.get("SHELL") or "/bin/sh"]
    # Inside our namespace the environment already says so. Real root stays outside (see
    # NOTES), and telling its children they were rootless would make overlay write user.*
    # xattrs and auto-userns hand out raw host IDs 1..N.
    try:
        return subprocess.call(argv)
    except FileNotFoundError as exc:
        raise CommandError(f"exec: {argv[0]}: executable file not found in $PATH") from exc
