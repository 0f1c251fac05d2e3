"""import-image, export-image: images in and out through skopeo's transports (no Go
counterpart in the containers-storage CLI; skopeo's ``copy`` is what Go users run)."""

from __future__ import annotations

import sys

from cs_core.cli.command import Env, command, option
from cs_core.cli.output import emit_json, out
from cs_core.cli.progress import ProgressLine, make_progress
from cs_core.images.progress import BlobProgress, ProgressCallback

_TRANSPORTS = "oci:DIR[:REF] | oci-archive:FILE[:REF] | docker-archive:FILE[:REF]"


class _BlobLines:
    """One progress bar per blob, on a terminal only (nothing on a pipe or with --quiet)."""

    def __init__(self, verb: str) -> None:
        self.verb = verb
        self.line: ProgressLine | None = None
        self.digest = ""

    def __call__(self, event: BlobProgress) -> None:
        if event.digest != self.digest or self.line is None:
            self.finish()
            self.digest = event.digest
            label = f"{self.verb} {event.index + 1}/{event.count} {event.digest[7:19]}"
            self.line = make_progress(label, event.total)
        if self.line is not None:
            self.line(event.done)

    def finish(self) -> None:
        if self.line is not None:
            self.line.finish()
        self.line = None


def _progress(verb: str, quiet: bool) -> _BlobLines | None:
    return None if quiet or not sys.stderr.isatty() else _BlobLines(verb)


@command("import-image", "Import an image from an OCI layout or an archive",
         options_help=f"[options [...]] {_TRANSPORTS} [name ...]", min_args=1)
@option("--platform", default="", help="OS/ARCH[/VARIANT] to pick from a multi-arch index")
@option("--quiet", "-q", is_flag=True, help="Print no progress")
@option("--json", "-j", "json_output", is_flag=True, help="Prefer JSON output")
def import_image_cmd(env: Env, args: tuple[str, ...], platform: str, quiet: bool,
                     json_output: bool) -> int:
    from cs_core.images import import_image, parse_platform

    plat = parse_platform(platform) if platform else None
    progress = _progress("importing", quiet)
    callback: ProgressCallback | None = progress
    result = import_image(env.store(), args[0], args[1:], platform=plat, progress=callback)
    if progress is not None:
        progress.finish()
    if json_output:
        emit_json({"id": result.id, "names": list(result.names), "digest": result.digest,
                   "layers": list(result.layers), "new-layers": list(result.new_layers)})
    else:
        out(f"{result.id}\n")
    return 0


@command("export-image", "Export an image as an OCI layout or an archive",
         options_help=f"[options [...]] imageNameOrID {_TRANSPORTS}", min_args=2, max_args=2)
@option("--compress", default="", help="Layer compression: gzip, zstd or none "
              "(default: gzip for OCI, none for docker-archive)")
@option("--quiet", "-q", is_flag=True, help="Print no progress")
def export_image_cmd(env: Env, args: tuple[str, ...], compress: str, quiet: bool) -> int:
    from cs_core.images import export_image

    progress = _progress("exporting", quiet)
    callback: ProgressCallback | None = progress
    result = export_image(env.store(), args[0], args[1], compression=compress or None,
                          progress=callback)
    if progress is not None:
        progress.finish()
    out(f"{result.manifest_digest}\n")
    return 0
