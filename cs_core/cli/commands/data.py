"""Big-data commands for layers, images and containers, and the item directories."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cs_core.cli.command import Env, command, json_option, option
from cs_core.cli.commands.images import digest_error
from cs_core.cli.output import binary_stdout, emit_json, err, out, read_input
from cs_core.records.bigdata import sha256_digest

KINDS = {"layer": "a layer", "image": "an image", "container": "an container"}
ITEM = {"layer": "layerNameOrID", "image": "imageNameOrID", "container": "containerNameOrID"}


def _resolve(env: Env, kind: str, ref: str) -> str:
    """The item's ID; Go looks the item up first, so a bad reference fails the same way."""
    record: Any = getattr(env.store(), kind)(ref)
    return str(record.id)


def _write_output(path: str, fetch: Callable[[], bytes]) -> None:
    # Go creates the output file before reading the data, so it exists even on failure.
    if path:
        with open(path, "wb") as f:
            f.write(fetch())
    else:
        stream = binary_stdout()
        stream.write(fetch())
        stream.flush()


def _data_commands(kind: str) -> None:
    """list-, get- and set-<kind>-data."""
    item = ITEM[kind]
    # Go's layer commands name the argument "layerID"; its usage line is kept.
    get_item = "layerID" if kind == "layer" else item
    article = KINDS[kind]

    @command(f"list-{kind}-data", f"List data items that are attached to {article}",
             aliases=(f"list{kind}data",), options_help=f"[options [...]] {item}",
             min_args=1, max_args=1)
    @json_option
    def list_data(env: Env, args: tuple[str, ...], json_output: bool) -> int:
        # The store resolves the reference itself, with Go's "locating image" context.
        keys = getattr(env.store(), f"list_{kind}_big_data")(args[0])
        if json_output:
            # Go's name list is a nil slice when there is no data: its encoder prints null.
            emit_json(list(keys) or None)
        else:
            out("".join(f"{k}\n" for k in keys))
        return 0

    @command(f"get-{kind}-data", f"Get data that is attached to {article}",
             aliases=(f"get{kind}data",), options_help=f"[options [...]] {get_item} dataName",
             min_args=2)
    @option("--file", "-f", "file", default="", help="Write data to file")
    def get_data(env: Env, args: tuple[str, ...], file: str) -> int:
        ident = _resolve(env, kind, args[0])
        _write_output(file, lambda: getattr(env.store(), f"{kind}_big_data")(ident, args[1]))
        return 0

    @command(f"set-{kind}-data",
             "Set data that is attached to an image (with sometimes wrong digest)"
             if kind == "image" else f"Set data that is attached to {article}",
             aliases=(f"set{kind}data",), options_help=f"[options [...]] {get_item} dataName",
             min_args=2)
    @option("--file", "-f", "file", default="", help="Read data from file")
    def set_data(env: Env, args: tuple[str, ...], file: str) -> int:
        ident = _resolve(env, kind, args[0])
        data = read_input(file)
        store = env.store()
        if kind == "image":
            # Go's CLI digests manifests as raw sha256 of the bytes ("sometimes wrong").
            store.set_image_big_data(ident, args[1], data, digest_manifest=sha256_digest)
        else:
            getattr(store, f"set_{kind}_big_data")(ident, args[1], data)
        return 0



def _item_commands(kind: str) -> None:
    """What Go has for images and containers only: data sizes and digests, directories."""
    item = ITEM[kind]
    article = KINDS[kind]

    @command(f"get-{kind}-data-size", f"Get size of data that is attached to {article}",
             aliases=(f"get{kind}datasize",), options_help=f"[options [...]] {item} dataName",
             min_args=2)
    def get_size(env: Env, args: tuple[str, ...]) -> int:
        ident = _resolve(env, kind, args[0])
        out(f"{getattr(env.store(), f'{kind}_big_data_size')(ident, args[1])}\n")
        return 0

    @command(f"get-{kind}-data-digest", f"Get digest of data that is attached to {article}",
             aliases=(f"get{kind}datadigest",), options_help=f"[options [...]] {item} dataName",
             min_args=2)
    def get_digest(env: Env, args: tuple[str, ...]) -> int:
        ident = _resolve(env, kind, args[0])
        digest = getattr(env.store(), f"{kind}_big_data_digest")(ident, args[1])
        if (problem := digest_error(digest)) is not None:
            err(f"{problem}\n")
            return 1
        out(f"{digest}\n")
        return 0

    what = "container's" if kind == "container" else "image's"

    @command(f"get-{kind}-dir", f"Find the {what} associated data directory",
             aliases=(f"get{kind}dir",), options_help=f"[options [...]] {item}", min_args=1)
    def get_dir(env: Env, args: tuple[str, ...]) -> int:
        # Resolve names first: the store's image_directory takes an ID, as Go's does.
        ident = _resolve(env, kind, args[0])
        out(f"{getattr(env.store(), f'{kind}_directory')(ident)}\n")
        return 0

    @command(f"get-{kind}-run-dir", f"Find the {what} associated runtime directory",
             aliases=(f"get{kind}rundir",), options_help=f"[options [...]] {item}", min_args=1)
    def get_run_dir(env: Env, args: tuple[str, ...]) -> int:
        ident = _resolve(env, kind, args[0])
        out(f"{getattr(env.store(), f'{kind}_run_directory')(ident)}\n")
        return 0


for _kind in ("layer", "image", "container"):
    _data_commands(_kind)
for _kind in ("image", "container"):
    _item_commands(_kind)
