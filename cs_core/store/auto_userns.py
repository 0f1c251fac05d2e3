"""The store's side of automatic user namespaces: how many IDs an image needs, and the maps
a new container gets (the ID arithmetic is cs_core.userns.auto)."""

from __future__ import annotations

from cs_core.config import AUTO_NS_MAX_SIZE, AUTO_NS_MIN_SIZE
from cs_core.errors import LayerUnknown, UserNamespaceTooBig
from cs_core.model import IDMap, Image
from cs_core.records.base import generate_id
from cs_core.store import layers, mounts
from cs_core.store.context import StoreContext
from cs_core.store.options import LayerOptions
from cs_core.userns.auto import AutoUserNsOptions, allocate, available_ids, size_from_user_files
from cs_core.userns.rootless import is_rootless


def size_from_image(ctx: StoreContext, image: Image, passwd_file: str = "",
                    group_file: str = "") -> int:
    """IDs the image needs: its layers' file owners, and the users and groups it defines."""
    size = 0
    name = image.top_layer
    while name:
        try:
            layer = layers.layer(ctx, name)
        except LayerUnknown:
            raise LayerUnknown(f'cannot find layer "{name}"') from None
        size = max([size, *(uid + 1 for uid in layer.uidset), *(gid + 1 for gid in layer.gidset)])
        name = layer.parent
    if not image.top_layer:
        return size
    # The files are read through a throw-away layer on top of the image, as Go does, so no
    # image layer is ever mounted writable. It keeps its parent's maps: it is never chowned.
    temp_id = generate_id()
    intent = ctx.layer_intents.begin([temp_id])  # a kill leaves it for the next open
    try:
        temp = layers.put_layer(ctx, temp_id, image.top_layer, (), "", False, LayerOptions(), None)
        try:
            mountpoint = mounts.mount(ctx, temp.id, "", ())
            try:
                size = max(size, size_from_user_files(mountpoint, passwd_file, group_file))
            finally:
                mounts.unmount(ctx, temp.id, force=True)
        finally:
            layers.delete_layer(ctx, temp.id)
    finally:
        intent.end()
    return size


def auto_userns_maps(ctx: StoreContext, options: AutoUserNsOptions,
                     image: Image | None) -> tuple[list[IDMap], list[IDMap]]:
    """UID and GID maps for a new container with an automatic user namespace.

    The caller holds ``userns.lock``; see cs_core.userns.
    """
    available_uids, available_gids = available_ids(ctx.options.root_auto_userns_user,
                                                   rootless=is_rootless())
    used_uids: list[IDMap] = []
    used_gids: list[IDMap] = []
    with ctx.container_store.reading():
        for container in ctx.container_store.records:
            used_uids += container.uid_map
            used_gids += container.gid_map
    size = options.size
    if size <= 0:
        # Unset (0) limits mean the defaults, as in Go's GetStore.
        size = max(ctx.options.auto_ns_min_size or AUTO_NS_MIN_SIZE, options.initial_size, 1)
        if image is not None:
            size = max(size, size_from_image(ctx, image, options.passwd_file, options.group_file))
        limit = ctx.options.auto_ns_max_size or AUTO_NS_MAX_SIZE
        if size > limit:
            raise UserNamespaceTooBig(
                f"the container needs a user namespace with size {size} that is bigger than "
                f"the maximum value allowed with userns=auto {limit}")
    return allocate(size, available_uids, available_gids, used_uids, used_gids,
                    options.additional_uid_mappings, options.additional_gid_mappings)
