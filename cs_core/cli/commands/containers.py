"""containers, container."""

from __future__ import annotations

from cs_core.cli.command import Env, command, json_option, lookup_each
from cs_core.cli.output import describe, emit_json, err, go_list, out, unstructure
from cs_core.errors import StorageError


@command("containers", "List containers", options_help="[options [...]]", max_args=0)
@json_option
def containers(env: Env, args: tuple[str, ...], json_output: bool) -> int:
    found = env.store().containers()
    if json_output:
        emit_json([unstructure(c) for c in found])
        return 0
    lines: list[str] = []
    for c in found:
        lines.append(f"{c.id}\n")
        lines += [f"\tname: {name}\n" for name in c.names]
        lines += [f"\tdata: {name}\n" for name in c.big_data_names]
    out("".join(lines))
    return 0


@command("container", "Examine a container",
         options_help="[options [...]] containerNameOrID [...]", min_args=1)
@json_option
def container(env: Env, args: tuple[str, ...], json_output: bool) -> int:
    store = env.store()
    images = {i.id: i for i in store.images()}
    matched = lookup_each(store.container, args)
    if json_output:
        emit_json([unstructure(m) for m in matched])
    else:
        for m in matched:
            lines = [f"ID: {m.id}\n"]
            lines += [f"Name: {name}\n" for name in m.names]
            lines.append(f"Image: {m.image}\n")
            if (img := images.get(m.image)) is not None:
                lines += [f"Image name: {name}\n" for name in img.names]
            try:
                lines.append(f"Size: {store.container_size(m.id)}\n")
            except (StorageError, OSError) as exc:
                lines.append(f"Size unknown: {describe(exc)}\n")
            lines.append(f"Layer: {m.layer}\n")
            lines += [f"Data: {name}\n" for name in m.big_data_names]
            out("".join(lines))
    return 0 if len(matched) == len(args) else 1


@command("container-parent-owners",
         "Compute the set of unmapped parent UIDs and GIDs of the container",
         options_help="[options [...]] containerNameOrID [...]", min_args=1)
@json_option
def container_parent_owners(env: Env, args: tuple[str, ...], json_output: bool) -> int:
    store = env.store()
    matched = lookup_each(store.container, args)
    for m in matched:
        try:
            uids, gids = store.container_parent_owners(m.id)
        except StorageError as exc:
            err(f"ContainerParentOwner: {exc}\n")
            return 1
        if json_output:
            emit_json({"ID": m.id, "UIDs": uids or None, "GIDs": gids or None})
        else:
            # Unlike the layer variant, Go prints both lists even when empty.
            out(f"ID: {m.id}\nUIDs: {go_list(uids)}\nGIDs: {go_list(gids)}\n")
    return 0 if len(matched) == len(args) else 1
