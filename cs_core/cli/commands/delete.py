"""delete, delete-layer, delete-image, delete-container.

Go reports through a map, so its plain-output order is random; we keep argument order.
"""

from __future__ import annotations

from collections.abc import Callable

from cs_core.cli.command import Env, command, json_option, option
from cs_core.cli.output import describe, emit_json, err
from cs_core.errors import StorageError


def _delete_each(args: tuple[str, ...], action: Callable[[str], object], json_output: bool) -> int:
    results: dict[str, str] = {}
    for what in args:
        try:
            action(what)
            results[what] = ""
        except (StorageError, OSError) as exc:
            results[what] = describe(exc)
    if json_output:
        emit_json(dict(sorted(results.items())))
    else:
        for what, error in results.items():
            if error:
                err(f"{what}: {error}\n")
    return 1 if any(results.values()) else 0


@command("delete", "Delete a layer or image or container, with no safety checks",
         options_help="[LayerOrImageOrContainerNameOrID [...]]", min_args=1)
@json_option
def delete(env: Env, args: tuple[str, ...], json_output: bool) -> int:
    return _delete_each(args, env.store().delete, json_output)


@command("delete-layer", "Delete a layer, with safety checks", aliases=("deletelayer",),
         options_help="[LayerNameOrID [...]]", min_args=1)
@json_option
def delete_layer(env: Env, args: tuple[str, ...], json_output: bool) -> int:
    return _delete_each(args, env.store().delete_layer, json_output)


@command("delete-container", "Delete a container, with safety checks",
         aliases=("deletecontainer",), options_help="[ContainerNameOrID [...]]", min_args=1)
@json_option
def delete_container(env: Env, args: tuple[str, ...], json_output: bool) -> int:
    return _delete_each(args, env.store().delete_container, json_output)


@command("delete-image", "Delete an image, with safety checks", aliases=("deleteimage",),
         options_help="[ImageNameOrID [...]]", min_args=1)
@option("--test", "-t", is_flag=True, help="Only test removal")
@json_option
def delete_image(env: Env, args: tuple[str, ...], test: bool, json_output: bool) -> int:
    store = env.store()
    results: dict[str, dict[str, object]] = {}
    failed = False
    for what in args:
        record: dict[str, object] = {}
        try:
            removed = store.delete_image(what, commit=not test)
            if removed:
                record["deleted-layers"] = list(removed)
        except (StorageError, OSError) as exc:
            record["error"] = describe(exc)
            failed = True
        results[what] = record
    if json_output:
        emit_json(dict(sorted(results.items())))
    else:
        # Go writes even the removed layers to stderr.
        for what, record in results.items():
            if "error" in record:
                err(f"{what}: {record['error']}\n")
            else:
                for layer in record.get("deleted-layers", []):  # type: ignore[attr-defined]
                    err(f"{what}: {layer}\n")
    return 1 if failed else 0
