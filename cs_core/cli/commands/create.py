"""create-layer, import-layer, create-image, create-container."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from cs_core.cli.command import CommandError, Env, command, json_option, option
from cs_core.cli.output import emit_json, out, unstructure
from cs_core.errors import UsageError

if TYPE_CHECKING:
    from cs_core.model import IDMap


def map_options(func: Callable[..., Any]) -> Callable[..., Any]:
    for decorate in reversed([
        option("--hostuidmap", is_flag=True, help="Force host UID map"),
        option("--hostgidmap", is_flag=True, help="Force host GID map"),
        option("--uidmap", default="", help="UID map"),
        option("--gidmap", default="", help="GID map"),
        option("--subuidmap", default="", help="subuid UID map for a user"),
        option("--subgidmap", default="", help="subgid GID map for a group"),
    ]):
        func = decorate(func)
    return func


def id_maps(hostuidmap: bool, hostgidmap: bool, uidmap: str, gidmap: str, subuidmap: str,
            subgidmap: str) -> tuple[list[IDMap], list[IDMap]]:
    from cs_core.userns.idmap import maps_from_flags

    if hostuidmap and (uidmap or subuidmap):
        raise UsageError("host uid map specified along with UID mapping")
    if hostgidmap and (gidmap or subgidmap):
        raise UsageError("host gid map specified along with GID mapping")
    return maps_from_flags([uidmap] if uidmap else [], [gidmap] if gidmap else [],
                           subuidmap, subgidmap, hostuidmap, hostgidmap)


def size_flag(flag: str, text: str) -> int:
    """A user-namespace size flag: a uint32, as Go's ``AutoUserNsOptions`` holds it."""
    if not text.isdigit() or int(text) >= 2**32:
        raise CommandError(f'invalid value "{text}" for flag --{flag}: not a size')
    return int(text)


def print_created(record: Any, json_output: bool, name_end: str = "\n") -> None:
    if json_output:
        emit_json(unstructure(record))
        return
    out(f"{record.id}\n")
    for name in record.names:
        out(f"\t{name}{name_end}")


def layer_options(maps: dict[str, Any]) -> Any:
    from cs_core.store import LayerOptions

    uids, gids = id_maps(**maps)
    return LayerOptions(uid_map=uids, gid_map=gids, host_uid_mapping=maps["hostuidmap"],
                        host_gid_mapping=maps["hostgidmap"])


@command("create-layer", "Create a new layer", aliases=("createlayer",),
         options_help="[options [...]] [parentLayerNameOrID]", max_args=1)
@option("--label", "-l", default="", help="Mount Label")
@option("--name", "-n", multiple=True, help="Layer name")
@option("--id", "-i", "layer_id", default="", help="Layer ID")
@option("--readonly", "-r", is_flag=True, help="Mark as read-only")
@json_option
@map_options
def create_layer(env: Env, args: tuple[str, ...], label: str, name: tuple[str, ...], layer_id: str,
                 readonly: bool, json_output: bool, **maps: Any) -> int:
    options = layer_options(maps)
    layer = env.store().create_layer(layer_id or None, args[0] if args else None, list(name),
                                     label, not readonly, options)
    print_created(layer, json_output)
    return 0


@command("import-layer", "Import a new layer", aliases=("importlayer",),
         options_help="[options [...]] [parentLayerNameOrID]", max_args=1)
@option("--label", "-l", default="", help="Mount Label")
@option("--name", "-n", multiple=True, help="Layer name")
@option("--id", "-i", "layer_id", default="", help="Layer ID")
@option("--readonly", "-r", is_flag=True, help="Mark as read-only")
@json_option
@option("--file", "-f", "file", default="", help="Read from file instead of stdin")
@map_options
def import_layer(env: Env, args: tuple[str, ...], label: str, name: tuple[str, ...], layer_id: str,
                 readonly: bool, json_output: bool, file: str, **maps: Any) -> int:
    # Here: only import-layer reports progress, and the module (with threading) would cost
    # every other command of this module; imported before the store takes any lock.
    from cs_core.cli.progress import progress_reader

    options = layer_options(maps)
    with progress_reader(file) as (stream, progress):
        options.progress = progress
        layer = env.store().put_layer(layer_id or None, args[0] if args else None, list(name),
                                      label, not readonly, options, stream)
    print_created(layer, json_output)
    return 0


def read_metadata(metadata: str, metadata_file: str) -> str:
    if metadata_file:
        with open(metadata_file, "rb") as f:
            return f.read().decode("utf-8", "surrogateescape")
    return metadata


@command("create-image", "Create a new image using layers", aliases=("createimage",),
         options_help="[options [...]] topLayerNameOrID", max_args=1)
@option("--name", "-n", multiple=True, help="Image name")
@option("--id", "-i", "image_id", default="", help="Image ID")
@option("--digest", "-d", default="", help="Image Digest")
@option("--metadata", "-m", default="", help="Metadata")
@option("--metadata-file", "-f", default="", help="Metadata File")
@json_option
def create_image(env: Env, args: tuple[str, ...], name: tuple[str, ...], image_id: str, digest: str,
                 metadata: str, metadata_file: str, json_output: bool) -> int:
    from cs_core.store import ImageOptions

    md = read_metadata(metadata, metadata_file)
    image = env.store().create_image(image_id or None, list(name), args[0] if args else "", md,
                                     ImageOptions(digest=digest, metadata=md))
    print_created(image, json_output)
    return 0


@command("create-container", "Create a new container from an image",
         aliases=("createcontainer",), options_help="[options [...]] parentImageNameOrID",
         min_args=1, max_args=1)
@option("--name", "-n", multiple=True, help="Container name")
@option("--volatile", is_flag=True, help="Mark as volatile")
@option("--id", "-i", "container_id", default="", help="Container ID")
@option("--metadata", "-m", default="", help="Metadata")
@option("--metadata-file", "-f", default="", help="Metadata File")
@json_option
@map_options
@option("--auto-userns", "auto_userns", is_flag=True,
              help="Pick unused host IDs (subuid/subgid ranges of root-auto-userns-user) for the container")
@option("--auto-userns-size", "auto_userns_size", default="0",
              help="Exact size of the automatic user namespace (0: as the image needs)")
@option("--auto-userns-initial-size", "auto_userns_initial_size", default="0",
              help="Minimum size of the automatic user namespace")
def create_container(env: Env, args: tuple[str, ...], name: tuple[str, ...], volatile: bool,
                     container_id: str, metadata: str, metadata_file: str, json_output: bool,
                     auto_userns: bool, auto_userns_size: str, auto_userns_initial_size: str,
                     **maps: Any) -> int:
    from cs_core.store import ContainerOptions

    md = read_metadata(metadata, metadata_file)
    uids, gids = id_maps(**maps)
    options = ContainerOptions(uid_map=uids, gid_map=gids, host_uid_mapping=maps["hostuidmap"],
                               host_gid_mapping=maps["hostgidmap"], volatile=volatile)
    sizes = {"auto-userns-size": auto_userns_size,
             "auto-userns-initial-size": auto_userns_initial_size}
    options.auto_userns_opts.size, options.auto_userns_opts.initial_size = (
        size_flag(flag, text) for flag, text in sizes.items())
    if auto_userns:
        if any(maps.values()):
            raise CommandError("--auto-userns cannot be combined with ID map flags")
        options.auto_userns = True
    elif options.auto_userns_opts.size or options.auto_userns_opts.initial_size:
        raise CommandError("--auto-userns-size and --auto-userns-initial-size need --auto-userns")
    container = env.store().create_container(container_id or None, list(name), args[0], None, md,
                                             options)
    # Go prints container names without a newline after each (kept: scripts may rely on it).
    print_created(container, json_output, name_end="")
    return 0


@command("create-storage-layer", "Create a new layer only in the storage driver",
         aliases=("createstoragelayer",), options_help="[options [...]] [parentLayerNameOrID]",
         max_args=1)
@option("--id", "-i", "layer_id", default="", help="Layer ID")
@option("--label", "-l", default="", help="Mount Label")
@option("--readonly", "-r", is_flag=True, help="Mark as read-only")
@json_option
@map_options
def create_storage_layer(env: Env, args: tuple[str, ...], layer_id: str, label: str, readonly: bool,
                         json_output: bool, **maps: Any) -> int:
    uids, gids = id_maps(**maps)
    made = env.store().create_storage_layer(layer_id or None, args[0] if args else None, label,
                                            not readonly, uids, gids)
    if json_output:
        emit_json(made)
    else:
        out(f"{made}\n")
    return 0
