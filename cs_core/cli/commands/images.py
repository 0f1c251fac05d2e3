"""images, image, images-by-digest."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from cs_core.cli.command import Env, command, json_option, lookup_each, option
from cs_core.cli.output import describe, emit_json, err, out, unstructure
from cs_core.errors import StorageError

if TYPE_CHECKING:
    from cs_core.model import Image

_ALGORITHMS = {"sha256": 64, "sha384": 96, "sha512": 128}


def digest_error(text: str) -> str | None:
    """Go's ``digest.Digest.Validate`` message, or None when the digest is well formed."""
    algo, sep, encoded = text.partition(":")
    if not sep or not encoded:
        return "invalid checksum digest format"
    if algo not in _ALGORITHMS:
        if not re.fullmatch(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*", algo):
            return "invalid checksum digest format"
        return "unsupported digest algorithm"
    if len(encoded) != _ALGORITHMS[algo] or not re.fullmatch(r"[a-f0-9]+", encoded):
        return "invalid checksum digest length"
    return None


def image_lines(images: list[Image], quiet: bool) -> str:
    lines: list[str] = []
    for image in images:
        lines.append(f"{image.id}\n")
        if quiet:
            continue
        lines += [f"\tname: {name}\n" for name in image.names]
        lines += [f"\tdigest: {d}\n" for d in image.digests]
        lines += [f"\tdata: {name}\n" for name in image.big_data_names]
    return "".join(lines)


@command("images", "List images", options_help="[options [...]]", max_args=0)
@json_option
@option("--quiet", "-q", is_flag=True, help="Only print IDs")
def images(env: Env, args: tuple[str, ...], json_output: bool, quiet: bool) -> int:
    found = env.store().images()
    if json_output:
        # Go's Store.Images returns a nil slice for an empty store, which encodes as null.
        emit_json([unstructure(i) for i in found] if found else None)
    else:
        out(image_lines(found, quiet))
    return 0


@command("images-by-digest", "List images by digest", options_help="[options [...]] DIGEST",
         min_args=1, max_args=1)
@json_option
@option("--quiet", "-q", is_flag=True, help="Only print IDs")
def images_by_digest(env: Env, args: tuple[str, ...], json_output: bool, quiet: bool) -> int:
    found: list[Image] = []
    for arg in args:
        if (problem := digest_error(arg)) is not None:
            err(f"{arg}: {problem}\n")
            return 1
        found += env.store().images_by_digest(arg)
    if json_output:
        emit_json([unstructure(i) for i in found])
    else:
        out(image_lines(found, quiet))
    return 0


@command("image", "Examine an image", options_help="[options [...]] imageNameOrID [...]",
         min_args=1)
@json_option
def image(env: Env, args: tuple[str, ...], json_output: bool) -> int:
    store = env.store()
    matched = lookup_each(store.image, args)
    if json_output:
        emit_json([unstructure(m) for m in matched])
    else:
        for m in matched:
            lines = [f"ID: {m.id}\n"]
            lines += [f"Name: {name}\n" for name in m.names]
            lines += [f"Top Layer: {layer}\n" for layer in [m.top_layer, *m.mapped_top_layers]]
            lines += [f"Digest: {d}\n" for d in m.digests]
            lines += [f"Data: {name}\n" for name in m.big_data_names]
            try:
                lines.append(f"Size: {store.image_size(m.id)}\n")
            except (StorageError, OSError) as exc:
                lines.append(f"Size unknown: {describe(exc)}\n")
            if m.read_only:
                lines.append("Read Only: true\n")
            out("".join(lines))
    return 0 if len(matched) == len(args) else 1
