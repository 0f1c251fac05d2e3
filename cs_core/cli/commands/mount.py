"""mount, unmount, mounted."""

from __future__ import annotations

from cs_core.cli.command import Env, command, json_option, option
from cs_core.cli.output import describe, emit_json, err, out
from cs_core.errors import StorageError


@command("mount", "Mount a layer or container",
         options_help="[options [...]] LayerOrContainerNameOrID", min_args=1)
@option("--opt", "-o", default="", help="Mount Options")
@option("--label", "-l", default="", help="Mount Label")
@option("--read-only", "--ro", "-r", "read_only", is_flag=True, help="Mount image readonly")
@json_option
def mount(env: Env, args: tuple[str, ...], opt: str, label: str, read_only: bool,
          json_output: bool) -> int:
    store = env.store()
    results: list[dict[str, str]] = []
    for arg in args:
        point, error = "", ""
        try:
            # Newer Go: --read-only mounts the image via MountImage; -o is accepted but unused.
            point = store.mount_image(arg, mount_label=label) if read_only else store.mount(arg, label)
        except (StorageError, OSError) as exc:
            error = describe(exc)
        results.append({"id": arg, "mountpoint": point, "error": error})
    if json_output:
        emit_json(results)
    else:
        for r in results:
            if r["error"]:
                err(f"{r['error']} while mounting {r['id']}\n")
            out(f"{r['mountpoint']}\n")
    return 1 if any(r["error"] for r in results) else 0


@command("unmount", "Unmount an image, layer or container", aliases=("umount",),
         options_help="LayerOrContainerNameOrID", min_args=1)
@json_option
@option("--force", "-f", is_flag=True, help="Force the umount")
def unmount(env: Env, args: tuple[str, ...], json_output: bool, force: bool) -> int:
    store = env.store()
    results: list[dict[str, str]] = []
    for arg in args:
        error = ""
        try:
            if not store.unmount(arg, force):
                # Printed even in JSON mode, as Go does.
                out(f"{arg} mountpoint unmounted\n")
        except (StorageError, OSError) as exc:
            try:
                store.unmount_image(arg, force)
            except (StorageError, OSError):
                error = describe(exc)
        results.append({"id": arg, "error": error})
    return _report(results, json_output, "while unmounting {}")


@command("mounted", "Check if a file system is mounted", options_help="LayerOrContainerNameOrID",
         min_args=1)
@json_option
def mounted(env: Env, args: tuple[str, ...], json_output: bool) -> int:
    store = env.store()
    results: list[dict[str, str]] = []
    for arg in args:
        error = ""
        try:
            if store.mounted(arg) > 0:
                out(f"{arg} mounted\n")
        except (StorageError, OSError) as exc:
            error = describe(exc)
        results.append({"id": arg, "error": error})
    return _report(results, json_output, "checking if {} is mounted")


def _report(results: list[dict[str, str]], json_output: bool, context: str) -> int:
    """Go's per-argument error report: JSON document, or ``<err> <context>`` lines on stderr."""
    if json_output:
        emit_json(results)
    else:
        for r in results:
            if r["error"]:
                err(f"{r['error']} {context.format(r['id'])}\n")
    return 1 if any(r["error"] for r in results) else 0
