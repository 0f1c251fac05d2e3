"""dedup: share the extents of identical files in layers used by images."""

from __future__ import annotations

from cs_core.cli.command import Env, command, json_option, option
from cs_core.cli.output import emit_json, err, out

_METHODS = ("crc", "size", "sha256")


@command("dedup", "Dedup all images", max_args=0)
@option("--hash-method", "hash_method", default="crc",
              help="Specify the hash function to use to detect identical files")
@json_option
def dedup(env: Env, args: tuple[str, ...], hash_method: str, json_output: bool) -> int:
    if hash_method not in _METHODS:
        err(f"invalid hash method: {hash_method}\n")
        return 1
    deduped = env.store().dedup(hash_method)
    if json_output:
        emit_json({"Deduped": deduped})
    else:
        out(f"Deduplicated {deduped} bytes\n")
    return 0
