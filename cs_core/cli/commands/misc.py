"""status, version, wipe, shutdown, gc, plugins."""

from __future__ import annotations

from collections.abc import Callable

import click

from cs_core.cli.app import cli
from cs_core.cli.framework import Env, command, describe, emit_json, err, go_list, json_option, out
from cs_core.errors import StorageError


@command(cli, "status", "Check on graph driver status", max_args=0)
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


@command(cli, "version", "Return containers-storage version information", max_args=0)
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


@command(cli, "wipe", "Wipe all layers, images, and containers", max_args=0)
@json_option
def wipe(env: Env, args: tuple[str, ...], json_output: bool) -> int:
    return _run_json_or_error("wipe", env.store().wipe, json_output)


@command(cli, "shutdown", "Shut down layer storage", max_args=0)
@json_option
@click.option("--force", "-f", is_flag=True, help="Unmount mounted layers first")
def shutdown(env: Env, args: tuple[str, ...], json_output: bool, force: bool) -> int:
    store = env.store()
    return _run_json_or_error("shutdown", lambda: store.shutdown(force), json_output)


@command(cli, "gc", "Remove storage data that no record refers to", max_args=0)
@json_option
def gc(env: Env, args: tuple[str, ...], json_output: bool) -> int:
    store = env.store()

    def collect() -> None:
        store.garbage_collect()
        store.shutdown(True)  # Go's gc command shuts the store down on exit

    return _run_json_or_error("gc", collect, json_output)


@command(cli, "plugins", "List plugins, their drivers, versions and load errors", max_args=0,
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
