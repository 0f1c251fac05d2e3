"""copy: files or directories into a layer, possibly from another layer (Go ``CopyWithTar``)."""

from __future__ import annotations

import contextlib
import os
import stat
from typing import TYPE_CHECKING

from cs_core.cli.command import CommandError, Env, command, json_option, option
from cs_core.cli.output import describe, err
from cs_core.copytree import copy_into
from cs_core.errors import StorageError

if TYPE_CHECKING:
    from cs_core.model import IDMap
    from cs_core.store import Store

_MAX_LINKS = 40


def resolve_in_root(root: str, rel: str) -> str:
    """``root/rel`` with every symlink resolved as if ``root`` were ``/``.

    A layer's own symlinks (``/etc -> /tmp/..``) must not send a copy outside the layer, so
    each component is looked up by hand instead of trusting the host's resolution.
    """
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    resolved: list[str] = []
    links = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(root, *resolved, part)
        try:
            st = os.lstat(candidate)
        except (FileNotFoundError, NotADirectoryError):
            # Not there (yet): the copy itself reports what is in the way.
            resolved.append(part)
            continue
        if stat.S_ISLNK(st.st_mode):
            links += 1
            if links > _MAX_LINKS:
                raise OSError(40, "too many levels of symbolic links", candidate)
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p not in ("", ".")] + parts
            continue
        resolved.append(part)
    return os.path.join(root, *resolved)


class _Place:
    """A path beneath a root: a layer's mount point, or "/" for a host path."""

    def __init__(self, root: str, rel: str, *, into_dir: bool = False, shown: str = "") -> None:
        self.root = root
        self.rel = rel
        self.into_dir = into_dir
        # What messages show: the path as the host would resolve it inside the root.
        self.shown = shown or resolve_in_root(root, rel)

    @classmethod
    def host(cls, path: str) -> _Place:
        return cls("/", os.path.abspath(path).lstrip("/"), into_dir=path.endswith("/"), shown=path)


class Owners:
    """Maps a source file's host owner to the owner its copy gets."""

    def __init__(self, chown: tuple[int, int] | None, src_uids: list[IDMap], src_gids: list[IDMap],
                 dst_uids: list[IDMap], dst_gids: list[IDMap]) -> None:
        self.chown = chown
        self.src = (src_uids, src_gids)
        self.dst = (dst_uids, dst_gids)

    def __call__(self, uid: int, gid: int) -> tuple[int, int]:
        from cs_core.userns.idmap import to_container, to_host

        # --chown names IDs as the target layer sees them: like a source's own owners,
        # they still go through the layer's maps (Go's untar maps ChownOpts too).
        if self.chown is not None:
            uid, gid = self.chown
        if self.src[0] and self.chown is None:
            uid = to_container(uid, self.src[0])
        if self.src[1] and self.chown is None:
            gid = to_container(gid, self.src[1])
        if self.dst[0]:
            uid = to_host(uid, self.dst[0])
        if self.dst[1]:
            gid = to_host(gid, self.dst[1])
        return uid, gid


def parse_chown(text: str) -> tuple[int, int] | None:
    if not text:
        return None
    uid_text, _, gid_text = text.partition(":")
    gid_text = gid_text or uid_text
    values = []
    for part, what in ((uid_text, "UID"), (gid_text, "GID")):
        if not part.isdigit() or int(part) >= 2**32:
            raise CommandError(f'error "{part}" as a numeric {what}: strconv.ParseUint: parsing '
                               f'"{part}": invalid syntax')
        values.append(int(part))
    return values[0], values[1]


@command("copy", "Copy files or directories into a layer, possibly from another layer",
         options_help="[options [...]] [sourceLayerNameOrID:]/path [...] targetLayerNameOrID:/path",
         min_args=2)
@option("--chown", "-o", default="", help="Set owner on new copies")
@json_option
def copy(env: Env, args: tuple[str, ...], chown: str, json_output: bool) -> int:
    owner = parse_chown(chown)
    store = env.store()
    with contextlib.ExitStack() as stack:

        def locate(spec: str) -> tuple[_Place, list[IDMap], list[IDMap]]:
            if ":" not in spec:
                return _Place.host(spec), [], []
            ref, path = spec.split(":", 1)
            try:
                layer = store.layer(ref)
            except StorageError as exc:
                raise CommandError(f'error finding layer "{ref}": {exc}') from exc
            try:
                mountpoint = store.mount(layer.id, layer.mount_label)
            except (StorageError, OSError) as exc:
                raise CommandError(f'error mounting layer "{layer.id}": {describe(exc)}') from exc
            stack.callback(_quiet_unmount, store, layer.id)
            # Go joins the path onto the mount point, which drops a trailing "/": "layer:/d/"
            # names "d" itself (a new file when it does not exist), unlike a host path "d/".
            return _Place(mountpoint, path), list(layer.uid_map), list(layer.gid_map)

        target, dst_uids, dst_gids = locate(args[-1])
        for spec in args[:-1]:
            source, src_uids, src_gids = locate(spec)
            try:
                copy_into(source.root, source.rel, target.root, target.rel,
                          Owners(owner, src_uids, src_gids, dst_uids, dst_gids),
                          into_dir=target.into_dir, shown=target.shown, src_shown=source.shown)
            except OSError as exc:
                err(f'error copying "{source.shown}" to "{target.shown}": {describe(exc)}\n')
                return 1
    return 0


def _quiet_unmount(store: Store, layer_id: str) -> None:
    with contextlib.suppress(Exception):
        store.unmount(layer_id, False)
