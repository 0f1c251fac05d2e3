"""exists, metadata, set-metadata and the names commands."""

from __future__ import annotations

from cs_core.cli.command import Env, command, json_option, option
from cs_core.cli.output import emit_json, err, out
from cs_core.errors import StorageError


@command("exists", "Check if a layer or image or container exists",
         options_help="[LayerOrImageOrContainerNameOrID [...]]", min_args=1)
@option("--quiet", "-q", is_flag=True, help="Don't print names")
@option("--layer", "-l", is_flag=True, help="Only succeed if the match is a layer")
@option("--image", "-i", is_flag=True, help="Only succeed if the match is an image")
@option("--container", "-c", is_flag=True, help="Only succeed if the match is a container")
@json_option
def exists(env: Env, args: tuple[str, ...], quiet: bool, layer: bool, image: bool,
           container: bool, json_output: bool) -> int:
    store = env.store()
    found: dict[str, bool] = {}
    missing = False
    for what in args:
        ok = store.exists(what)
        # As in Go, the printed value ignores the kind filters; only the exit status uses them.
        found[what] = ok
        for wanted, lookup in ((container, store.container), (image, store.image),
                               (layer, store.layer)):
            if wanted:
                try:
                    lookup(what)
                except StorageError:
                    ok = False
        missing = missing or not ok
    if json_output:
        emit_json(dict(sorted(found.items())))
    elif not quiet:
        out("".join(f"{what}: {'true' if ok else 'false'}\n" for what, ok in found.items()))
    return 1 if missing else 0


@command("metadata", "Retrieve layer, image, or container metadata",
         options_help="[LayerOrImageOrContainerNameOrID [...]]", min_args=1)
@option("--quiet", "-q", is_flag=True, help="Omit names and IDs")
@json_option
def metadata(env: Env, args: tuple[str, ...], quiet: bool, json_output: bool) -> int:
    store = env.store()
    values: dict[str, str] = {}
    missing = False
    for what in args:
        try:
            md = store.metadata(what)
            values[what] = md[:-1] if md.endswith("\n") else md
        except StorageError:
            missing = True
    if json_output:
        emit_json(dict(sorted(values.items())))
    elif quiet:
        out("".join(f"{values.get(what, '')}\n" for what in args))
    else:
        out("".join(f"{what}: {values.get(what, '')}\n" for what in args))
    return 1 if missing else 0


@command("set-metadata", "Set layer, image, or container metadata", aliases=("setmetadata",),
         options_help="[options [...]] layerOrImageOrContainerNameOrID", min_args=1, max_args=1)
@option("--metadata", "-m", default="", help="Metadata")
@option("--metadata-file", "-f", default="", help="Metadata File")
def set_metadata(env: Env, args: tuple[str, ...], metadata: str, metadata_file: str) -> int:
    if not metadata and not metadata_file:
        err("no new metadata provided\n")
        return 1
    # Here, not at the top: the create commands' module (and the progress reporting it
    # imports) is not needed by metadata, exists or get-names.
    from cs_core.cli.commands.create import read_metadata

    env.store().set_metadata(args[0], read_metadata(metadata, metadata_file))
    return 0


@command("get-names", "Get layer, image, or container name or names", aliases=("getnames",),
         options_help="[options [...]] imageOrContainerNameOrID", min_args=1)
@json_option
def get_names(env: Env, args: tuple[str, ...], json_output: bool) -> int:
    store = env.store()
    names = store.names(store.lookup(args[0]))
    if json_output:
        emit_json(list(names))
    else:
        out("".join(f"{n}\n" for n in names))
    return 0


def _change_names(env: Env, ref: str, names: tuple[str, ...], op: str, json_output: bool) -> int:
    store = env.store()
    ident = store.lookup(ref)
    getattr(store, f"{op}_names")(ident, list(names))
    if json_output:
        emit_json(list(store.names(ident)))
    return 0


@command("add-names", "Add layer, image, or container name or names", aliases=("addnames",),
         options_help="[options [...]] imageOrContainerNameOrID", min_args=1)
@option("--name", "-n", multiple=True, help="New name")
@json_option
def add_names(env: Env, args: tuple[str, ...], name: tuple[str, ...], json_output: bool) -> int:
    # Newer Go: Store.AddNames (new names first); 1.43's CLI appended them instead.
    return _change_names(env, args[0], name, "add", json_output)


@command("set-names", "Set layer, image, or container name or names", aliases=("setnames",),
         options_help="[options [...]] imageOrContainerNameOrID", min_args=1)
@option("--name", "-n", multiple=True, help="New name")
@json_option
def set_names(env: Env, args: tuple[str, ...], name: tuple[str, ...], json_output: bool) -> int:
    return _change_names(env, args[0], name, "set", json_output)


@command("remove-names", "Remove layer, image, or container name or names",
         aliases=("removenames",), options_help="[options [...]] imageOrContainerNameOrID",
         min_args=1)
@option("--name", "-n", multiple=True, help="Name to remove")
@json_option
def remove_names(env: Env, args: tuple[str, ...], name: tuple[str, ...], json_output: bool) -> int:
    return _change_names(env, args[0], name, "remove", json_output)
