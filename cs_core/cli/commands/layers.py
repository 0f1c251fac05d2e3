"""layers (with --tree and -q), layer, storage-layers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cs_core.cli.command import Env, command, json_option, lookup_each, option
from cs_core.cli.output import emit_json, err, go_list, out, unstructure
from cs_core.cli.tree import TreeNode, render_tree
from cs_core.errors import StorageError

if TYPE_CHECKING:
    from cs_core.model import Container, Image, Layer


@command("layers", "List layers", options_help="[options [...]]", max_args=0)
@option("--tree", "-t", is_flag=True, help="Use a tree")
@option("--quick", "-q", is_flag=True, help="Only print IDs")
@json_option
def layers(env: Env, args: tuple[str, ...], tree: bool, quick: bool, json_output: bool) -> int:
    store = env.store()
    all_layers = store.layers()
    if json_output:
        emit_json([unstructure(layer) for layer in all_layers])
        return 0
    if quick:
        out("".join(f"{layer.id}\n" for layer in all_layers))
        return 0
    images_by_layer: dict[str, list[Image]] = {}
    try:
        for image in store.images():
            for layer_id in [image.top_layer, *image.mapped_top_layers]:
                images_by_layer.setdefault(layer_id, []).append(image)
    except StorageError:
        pass  # Go lists layers even when the image store cannot be read
    container_by_layer: dict[str, Container] = {}
    try:
        for container in store.containers():
            container_by_layer[container.layer] = container
    except StorageError:
        pass
    if tree:
        out(render_tree([_node(layer, images_by_layer, container_by_layer) for layer in all_layers]))
        return 0
    lines: list[str] = []
    for layer in all_layers:
        lines.append(f"{layer.id}\n")
        lines += [f"\tname: {name}\n" for name in layer.names]
        for image in images_by_layer.get(layer.id, []):
            lines.append(f"\timage: {image.id}\n")
            lines += [f"\t\tname: {name}\n" for name in image.names]
        if (user := container_by_layer.get(layer.id)) is not None:
            lines.append(f"\tcontainer: {user.id}\n")
            lines += [f"\t\tname: {name}\n" for name in user.names]
    out("".join(lines))
    return 0


def _node(layer: Layer, images: dict[str, list[Image]], containers: dict[str, Container]) -> TreeNode:
    notes = [f"name: {name}" for name in layer.names]
    if layer.mount_point:
        notes.append(f"mount: {layer.mount_point}")
    for image in images.get(layer.id, []):
        notes.append(f"image: {image.id}")
        notes += [f"image name: {name}" for name in image.names]
    if (container := containers.get(layer.id)) is not None:
        notes.append(f"container: {container.id}")
        notes += [f"container name: {name}" for name in container.names]
    return TreeNode(layer.parent or "(base)", layer.id, notes)


@command("layer", "Examine a layer", options_help="[options [...]] layerNameOrID [...]",
         min_args=1)
@json_option
def layer(env: Env, args: tuple[str, ...], json_output: bool) -> int:
    store = env.store()
    matched = lookup_each(store.layer, args)
    if json_output:
        emit_json([unstructure(m) for m in matched])
    else:
        lines: list[str] = []
        for m in matched:
            lines.append(f"ID: {m.id}\n")
            lines += [f"UID mapping: (container={u.container_id}, host={u.host_id}, size={u.size})\n"
                      for u in m.uid_map]
            lines += [f"GID mapping: (container={g.container_id}, host={g.host_id}, size={g.size})\n"
                      for g in m.gid_map]
            if m.parent:
                lines.append(f"Parent: {m.parent}\n")
            lines += [f"Name: {name}\n" for name in m.names]
            if m.read_only:
                lines.append("Read Only: true\n")
        out("".join(lines))
    return 0 if len(matched) == len(args) else 1


@command("storage-layers", "List storage layers", options_help="[options [...]]", max_args=0)
@json_option
def storage_layers(env: Env, args: tuple[str, ...], json_output: bool) -> int:
    ids = env.store().storage_layers()
    if json_output:
        emit_json(list(ids))
    else:
        out("".join(f"{i}\n" for i in ids))
    return 0


@command("layer-parent-owners", "Compute the set of unmapped parent UIDs and GIDs of the layer",
         options_help="[options [...]] layerNameOrID [...]", min_args=1)
@json_option
def layer_parent_owners(env: Env, args: tuple[str, ...], json_output: bool) -> int:
    store = env.store()
    matched = lookup_each(store.layer, args)
    for m in matched:
        try:
            uids, gids = store.layer_parent_owners(m.id)
        except StorageError as exc:
            err(f"LayerParentOwner: {exc}\n")
            return 1
        if json_output:
            # Go encodes a nil slice as null.
            emit_json({"ID": m.id, "UIDs": uids or None, "GIDs": gids or None})
        else:
            out(f"ID: {m.id}\n")
            if uids:
                out(f"UIDs: {go_list(uids)}\n")
            if gids:
                out(f"GIDs: {go_list(gids)}\n")
    return 0 if len(matched) == len(args) else 1
