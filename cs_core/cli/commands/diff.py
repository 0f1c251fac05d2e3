"""changes, diffsize, diff, applydiff.

Arguments are ``layer [reference]``: the first is the layer to describe (Go's ``to``), the
optional second the layer to compare against (Go's ``from``; default: the layer's parent).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from cs_core.cli.command import CommandError, Env, command, json_option, option
from cs_core.cli.output import binary_stdout, emit_json, out
from cs_core.cli.progress import make_progress, progress_reader
from cs_core.goformat import go_quote

if TYPE_CHECKING:
    from cs_core.archive.compression import Compression
    from cs_core.store import Store

_PAIR = "[options [...]] layerNameOrID [referenceLayerNameOrID]"


def _pair(args: tuple[str, ...]) -> tuple[str | None, str]:
    return (args[1] if len(args) > 1 else None), args[0]


@command("changes", "Compare two layers", options_help=_PAIR, min_args=1, max_args=2)
@json_option
def changes(env: Env, args: tuple[str, ...], json_output: bool) -> int:
    from_, to = _pair(args)
    found = env.store().changes(from_, to)
    if json_output:
        emit_json([{"Path": c.path, "Kind": c.kind} for c in found])
    else:
        out("".join(f"{c.kind_name} {go_quote(c.path)}\n" for c in found))
    return 0


@command("diffsize", "Compare two layers", aliases=("diff-size",), options_help=_PAIR,
         min_args=1, max_args=2)
def diffsize(env: Env, args: tuple[str, ...]) -> int:
    from_, to = _pair(args)
    out(f"{env.store().diff_size(from_, to)}\n")
    return 0


@command("diff", "Compare two layers", options_help=_PAIR, min_args=1, max_args=2)
@option("--file", "-f", "file", default="", help="Write to file instead of stdout")
@option("--uncompressed", "-u", is_flag=True, help="Use no compression")
@option("--gzip", "-c", "use_gzip", is_flag=True, help="Compress using gzip")
@option("--bzip2", "--bz2", "-b", "use_bzip2", is_flag=True,
              help="Compress using bzip2 (not currently supported)")
@option("--xz", "-x", "use_xz", is_flag=True, help="Compress using xz (not currently supported)")
@option("--quiet", "-q", is_flag=True, help="Show no progress bar on a terminal")
def diff(env: Env, args: tuple[str, ...], file: str, uncompressed: bool, use_gzip: bool,
         use_bzip2: bool, use_xz: bool, quiet: bool) -> int:
    from cs_core.archive.compression import Compression

    from_, to = _pair(args)
    compression: Compression | None = None
    # Later flags win, as in Go's if-chain.
    if uncompressed or use_gzip or use_bzip2 or use_xz:
        compression = Compression.NONE
        if use_gzip:
            compression = Compression.GZIP
        if use_bzip2:
            compression = Compression.BZIP2
        if use_xz:
            compression = Compression.XZ
    if compression in (Compression.BZIP2, Compression.XZ):
        # Go's text names the archive extension.
        ext = "tar.bz2" if compression == Compression.BZIP2 else "tar.xz"
        raise CommandError(f"unsupported compression format {ext}")
    store = env.store()
    progress = make_progress("wrote", quiet=quiet)
    if progress is not None:  # only a bar on a terminal needs the size
        progress.total = _diff_total(store, from_, to, compression)
    if file:
        with open(file, "wb") as f:
            store.diff(from_, to, f, compression, progress=progress)
    else:
        stream = binary_stdout()
        store.diff(from_, to, stream, compression, progress=progress)
        stream.flush()
    if progress is not None:
        progress.finish()
    return 0


def _diff_total(store: Store, from_: str | None, to: str,
                compression: Compression | None) -> int | None:
    """The bytes ``diff`` will write, when known: the recorded size of an uncompressed
    diff against the layer's parent (the stored tar stream itself)."""
    from cs_core.archive.compression import Compression
    from cs_core.errors import StorageError

    try:
        layer = store.layer(to)
        parent = store.layer(from_).id if from_ else layer.parent
    except StorageError:
        return None  # diff itself reports it
    kind = Compression(layer.compression) if compression is None else compression
    if kind != Compression.NONE or parent != layer.parent:
        return None
    return layer.uncompressed_size or None


@command("applydiff", "Apply a diff to a layer", aliases=("apply-diff",),
         options_help="[options [...]] layerNameOrID [referenceLayerNameOrID]", min_args=1,
         max_args=1)
@option("--file", "-f", "file", default="", help="Read from file instead of stdin")
@option("--quiet", "-q", is_flag=True, help="Show no progress bar on a terminal")
def applydiff(env: Env, args: tuple[str, ...], file: str, quiet: bool) -> int:
    with progress_reader(file, quiet=quiet) as (stream, progress):
        env.store().apply_diff(args[0], stream, progress=progress)
    return 0


@command("applydiff-using-staging-dir", "Apply a diff to a layer using a staging directory",
         options_help="layerNameOrID directory", min_args=2, max_args=2)
def applydiff_using_staging_dir(env: Env, args: tuple[str, ...]) -> int:
    import tempfile

    from cs_core.archive.changes import export_tree
    from cs_core.drivers.staging import TarDiffer
    from cs_core.store.staged import ApplyStagedLayerOptions

    layer, source = args
    store = env.store()
    os.lstat(source)  # a missing source is the user's mistake: say so before anything else
    # Go tars the directory into a temporary file, then stages it; we apply the plain tar (Go
    # converts it to zstd:chunked first, for its partial-pull differ, which we do not have).
    with tempfile.TemporaryFile(prefix="layer-diff-tar-") as tar:
        export_tree(Path(source), tar)  # type: ignore[arg-type]
        tar.seek(0)
        staged = store.prepare_staged_layer(TarDiffer(tar))  # type: ignore[arg-type]
    try:
        target = store.layer(layer)  # unlike Go, never create a layer named by a typo
        store.apply_staged_layer(ApplyStagedLayerOptions(diff_output=staged, id=target.id))
    except BaseException:
        store.cleanup_staged_layer(staged)
        raise
    return 0
