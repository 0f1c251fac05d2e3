"""The overlay graph driver: Go's layout and semantics on kernel overlayfs (or fuse-overlayfs)."""

from __future__ import annotations

import contextlib
import errno
import io
import os
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, ClassVar

from cs_core import (
    NO_MAPS,
    ApplyDiffOpts,
    ApplyResult,
    Change,
    ConfigTable,
    CreateOpts,
    Differ,
    DriverConfig,
    FileGetter,
    GraphDriver,
    IDMap,
    IDMapPair,
    LayerUnknown,
    MountOpts,
    StagedLayer,
    StagedTree,
    StagingDriver,
    TreeStager,
    WhiteoutFormat,
)
from cs_core.drivers.api import (
    CONTENT_DIR,
    disk_usage,
    evolve,
    getLogger,
    is_contiguous,
    new_staging_dir,
    ram_in_bytes,
    remove_staging_dir,
    remove_tree,
    write_in_place,
)
from cs_overlay import features, fsinfo, idmapped, mounting, stack
from cs_overlay.errors import OverlayConfigError, OverlayError, OverlayNotSupported
from cs_overlay.layout import LINK_DIR, LOWER_FILE, Layout, diff_suffix
from cs_overlay.options import OverlayOptions, parse_options, parse_uint
from cs_overlay.quota import Quota, QuotaControl
from cs_overlay.staged import StagingArea

if TYPE_CHECKING:
    from cs_core.drivers.api import ApplyOptions


def _which(program: str) -> str | None:
    # shutil (with bz2 and lzma, ~2.5 ms) only when a mount program is looked for.
    import shutil

    return shutil.which(program)

log = getLogger(__name__)  # logging itself is imported when something is logged

DEFAULT_PERMS = 0o555
#: Our own limit on lower layers: nesting read-only overlays multiplies the kernel's 500.
MAX_LOWERS = stack.KERNEL_MAX_LOWERS * stack.KERNEL_MAX_LOWERS // 2


class DiffDirGetter(FileGetter):
    """Reads a layer's files straight from its diff and its lowers' diffs (Go DiffGetter).

    Unlike Go's, every name is resolved beneath one diff directory with no symlink followed:
    a layer that turns a directory into a symlink cannot make a replay read host files.
    """

    def __init__(self, dirs: list[Path]) -> None:
        self.dirs = dirs
        self._fds: list[int] = []

    def _dir_fds(self) -> list[int]:
        if not self._fds:
            for d in self.dirs:
                try:
                    self._fds.append(os.open(d, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC))
                except FileNotFoundError:
                    continue
        return self._fds

    def open(self, path: str) -> BinaryIO:
        from cs_core import UnsafeArchive
        from cs_core.drivers.api import (
            clean_member_name,  # lazily: CLI start-up
            open_regular,
        )

        rel = clean_member_name(path)
        if not rel:
            raise UnsafeArchive(f"{path!r} is not a file")
        missing: OSError | None = None
        for fd in self._dir_fds():
            try:
                rfd, _st = open_regular(fd, rel)
            except FileNotFoundError as exc:
                missing = missing or exc  # in a lower diff, maybe
                continue
            return open(rfd, "rb", buffering=0)  # type: ignore[return-value]
        raise missing or FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)

    def close(self) -> None:
        for fd in self._fds:
            os.close(fd)
        self._fds.clear()


class OverlayDriver(GraphDriver, StagingDriver, TreeStager):
    name = "overlay"
    aliases: ClassVar[tuple[str, ...]] = ("overlay2",)
    whiteout_format = WhiteoutFormat.OVERLAY
    priority = 10
    rootless = True
    rootless_options = ("ignore_chown_errors",)  # Go keeps only this one from the system file

    @classmethod
    def config_options(cls, table: ConfigTable) -> list[str]:
        out = table.emit("ignore_chown_errors", "mount_program", "mountopt", "size")
        out += table.emit("inodes", fallback=False) + table.emit("skip_mount_home")
        out += table.emit("use_composefs", fallback=False)
        if mask := table.table.get("force_mask", ""):
            out.append(f"{cls.name}.force_mask={mask}")  # Go passes it on unchecked
        return out

    # -- construction ------------------------------------------------------------------------

    @staticmethod
    def _native_impossible(config: DriverConfig) -> str:
        """Why native overlay cannot be used without even trying a mount ("" if it might)."""
        magic = fsinfo.home_magic(config.home)
        if magic in fsinfo.INCOMPATIBLE:
            return (f"'overlay' is not supported over {fsinfo.fs_name(magic)}, a mount_program is "
                    "required: backing file system is unsupported for this graph driver")
        if os.geteuid() != 0:
            return "kernel overlay needs root; configure overlay.mount_program"
        with contextlib.suppress(OSError):
            if (config.home / ".has-mount-program").read_text().strip() == "true":
                return "this store was populated through a mount program"
        return ""

    @classmethod
    def probe(cls, config: DriverConfig) -> None:
        opts = parse_options(config.options)
        if opts.mount_program:
            return
        reason = cls._native_impossible(config)
        if reason and not _which("fuse-overlayfs"):
            raise OverlayNotSupported(reason)
        if not reason and opts.force_mask is not None:
            raise OverlayConfigError("'force_mask' is supported only with 'mount_program'")

    def __init__(self, config: DriverConfig) -> None:
        super().__init__(config)
        self.opts: OverlayOptions = parse_options(config.options)
        self.probe(config)
        self.backing_fs = fsinfo.fs_name(fsinfo.home_magic(self.home))
        self.home.mkdir(mode=0o700, parents=True, exist_ok=True)
        (self.home / LINK_DIR).mkdir(mode=0o755, parents=True, exist_ok=True)
        self.run_home.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.layout = Layout(self.home, list(self.opts.image_stores),
                             split_image_store=config.image_store)
        self.supports_d_type = True
        self.using_metacopy = False
        flag = self.home / ".has-mount-program"
        if not self.opts.mount_program and not flag.exists():
            # A store from before the flag file existed: look for signs of fuse-overlayfs once.
            detected = features.mount_program_indicators(self.home)
            write_in_place(flag, b"true" if detected else b"false")
        if not self.opts.mount_program:
            # As Go: when native overlay is out of the question here, fuse-overlayfs on PATH
            # takes over silently.
            reason = self._native_impossible(config)
            if not reason:
                ok, reason = features.check(self.run_home, "overlay",
                                            lambda: features.supports_overlay(self.home, self.backing_fs))
                reason = "" if ok else (reason or "kernel does not support overlay fs")
            if reason:
                prog = _which("fuse-overlayfs")
                if not prog:
                    raise OverlayNotSupported(reason)
                log.info("overlay: using fuse-overlayfs: %s", reason)
                self.opts.mount_program = prog
        if self.opts.mount_program:
            self.whiteout_format = WhiteoutFormat.AUFS  # type: ignore[misc]  # FUSE keeps .wh. files
            write_in_place(flag, b"true")
        else:
            if self.opts.force_mask is not None:
                raise OverlayConfigError("'force_mask' is supported only with 'mount_program'")
            self.using_metacopy, _ = features.check(
                self.run_home, f"metacopy({self.opts.mount_options})",
                lambda: (features.does_metacopy(self.home, self.opts.mount_options), ""))
        self._native_diff: bool | None = None
        self._volatile: bool | None = None
        self._idmapped: bool | None = None
        self.quota: QuotaControl | None = None
        if self.backing_fs == "xfs":
            try:
                self.quota = QuotaControl(str(self.home))
            except OSError as exc:
                if self.opts.quota_size or self.opts.quota_inodes:
                    raise OverlayNotSupported(
                        "storage options overlay.size and overlay.inodes not supported. Filesystem does "
                        f"not support Project Quota: {exc.strerror}") from None
        elif self.opts.quota_size or self.opts.quota_inodes:
            raise OverlayNotSupported(
                "storage option overlay.size and overlay.inodes only supported for backingFS XFS. "
                f"Found {self.backing_fs}")
        if not self.opts.skip_mount_home:
            mounting.make_private(str(self.home))
        # Staged content must be renamed into layers, so it lives where image layers do.
        self.staging = StagingArea(self.layout.homes[-1])
        # Unlike Go (shutdown only), also prune at start: CLI users rarely run shutdown, and a
        # killed pull would otherwise keep its staged content on disk indefinitely.
        self.staging.prune()

    def cleanup(self) -> None:
        if self.staging.prune():
            return  # another process is staging a layer: keep the home mount, as Go does
        if not self.opts.skip_mount_home and mounting.is_mountpoint(str(self.home)):
            mounting.unmount(str(self.home))

    # -- features ----------------------------------------------------------------------------

    def use_naive_diff(self) -> bool:
        if self.opts.mount_program:
            return True
        if self._native_diff is None:
            ok, _ = features.check(
                self.run_home, f"native-diff({self.opts.mount_options})",
                lambda: self._native_diff_probe())
            self._native_diff = ok
        return not self._native_diff

    def _native_diff_probe(self) -> tuple[bool, str]:
        problem = features.native_diff_problem(self.home, self.opts.mount_options)
        if problem:
            return False, ("Not using native diff for overlay, this may cause degraded performance "
                           f"for building images: {problem}")
        return True, ""

    def supports_volatile(self) -> bool:
        if self.opts.mount_program:
            return True
        if self._volatile is None:
            self._volatile, _ = features.check(self.run_home, "volatile",
                                               lambda: (features.does_volatile(self.home), ""))
        return self._volatile

    def status(self) -> list[tuple[str, str]]:
        def b(v: bool) -> str:
            return "true" if v else "false"

        return [
            ("Backing Filesystem", self.backing_fs),
            ("Supports d_type", b(self.supports_d_type)),
            ("Native Overlay Diff", b(not self.use_naive_diff())),
            ("Using metacopy", b(self.using_metacopy)),
            ("Supports shifting", b(self.supports_shifting((), ()))),
            ("Supports volatile", b(self.supports_volatile())),
        ]

    def additional_image_stores(self) -> list[Path]:
        return list(self.opts.image_stores)

    def supports_shifting(self, uid_map: Sequence[IDMap], gid_map: Sequence[IDMap]) -> bool:
        """Go HEAD ``SupportsShifting``: ID-mapped lowers, or fuse-overlayfs's own mapping."""
        if os.environ.get("_CONTAINERS_OVERLAY_DISABLE_IDMAP") == "yes":
            return False
        if self.opts.mount_program:
            # fuse-overlayfs maps the upper dir too, which only works for contiguous maps.
            return is_contiguous(uid_map) and is_contiguous(gid_map)
        return self.supports_idmapped_mounts()

    def supports_idmapped_mounts(self) -> bool:
        """Whether overlay takes ID-mapped lower dirs here (root only; probed once, cached)."""
        if self._idmapped is None:
            if os.geteuid() != 0:
                self._idmapped = False
            else:
                self._idmapped, _ = features.check(
                    self.run_home, "idmapped-lower-dir",
                    lambda: idmapped.supports_idmapped_lower_layers(self.home))
        return self._idmapped

    # -- layers ------------------------------------------------------------------------------

    def dir(self, id: str) -> Path:
        return self.layout.dir(id)

    def layer_dir(self, id: str) -> Path:
        return self.dir(id) / "diff"

    def exists(self, id: str) -> bool:
        return self.dir(id).exists()

    def list_layers(self) -> list[str]:
        # Any directory with a link file or a diff/ is a layer (IDs given with --id need not be
        # 64 hex digits); probes' scratch dirs (compat*, *-check*) have neither.
        out = []
        for home in self.layout.homes:
            if not home.is_dir():
                continue
            for entry in os.scandir(home):
                if entry.name != LINK_DIR and entry.is_dir(follow_symlinks=False) and (
                        os.path.lexists(os.path.join(entry.path, "link"))
                        or os.path.isdir(os.path.join(entry.path, "diff"))):
                    out.append(entry.name)
        return out

    def create(self, id: str, parent: str | None, opts: CreateOpts) -> None:
        if opts.storage_opt:
            if "size" in opts.storage_opt:
                raise OverlayError("--storage-opt size is only supported for ReadWrite Layers")
            if "inodes" in opts.storage_opt:
                raise OverlayError("--storage-opt inodes is only supported for ReadWrite Layers")
        self._create(id, parent, opts, quota=None, read_only=True)

    def create_read_write(self, id: str, parent: str | None, opts: CreateOpts) -> None:
        if opts.storage_opt and self.quota is None:
            raise OverlayError(
                "--storage-opt is supported only for overlay over xfs with 'pquota' mount option")
        size, inodes = self.opts.quota_size, self.opts.quota_inodes
        for key, val in opts.storage_opt.items():
            k = key.lower()
            if k == "size":
                size = ram_in_bytes(val)
            elif k == "inodes":
                inodes = parse_uint(val)
            else:
                raise OverlayError(f"unknown option {k}")
        self._create(id, parent, opts, quota=Quota(size, inodes), read_only=False)

    def _root_ids(self, opts: CreateOpts) -> tuple[int, int]:
        uid_map = opts.uid_map or self.config.uid_map
        gid_map = opts.gid_map or self.config.gid_map

        def root(maps: Sequence[IDMap]) -> int:
            for m in maps:
                if m.container_id == 0:
                    return m.host_id
            return 0

        return root(uid_map), root(gid_map)

    def _create(self, id: str, parent: str | None, opts: CreateOpts, quota: Quota | None,
                read_only: bool) -> None:
        # With a split image store, image (read-only) layers live there, as in Go HEAD.
        root = self.layout.homes[-1] if read_only else self.home
        d = root / id
        (root / LINK_DIR).mkdir(mode=0o755, parents=True, exist_ok=True)
        perms, uid, gid = self._new_diff_attrs(parent, opts)
        if any(os.path.lexists(h / id) for h in self.layout.homes):
            log.warning("Trying to create a layer %s while directory %s already exists; removing it first",
                        id, d)
            self.remove(id)
        d.mkdir(mode=0o700)
        os.chown(d, uid, gid)
        try:
            if self.quota is not None and quota is not None:
                self.quota.set_quota(str(d), quota)
            self._mkdir(d / "diff", perms, uid, gid)
            self.layout.create_link(d)
            self._mkdir(d / "work", 0o700, uid, gid)
            self._mkdir(d / "merged", 0o700, uid, gid)
            if not parent:
                self._mkdir(d / "empty", 0o700, uid, gid)
                return
            lower = self.layout.lower_for_child(parent)
            if lower:
                write_in_place(d / LOWER_FILE, lower.encode(), 0o666)
        except BaseException:
            self.remove(id)
            raise

    def _new_diff_attrs(self, parent: str | None, opts: CreateOpts) -> tuple[int, int, int]:
        """Mode and owner of a new layer's diff/ (and owner of its directory)."""
        uid, gid = self._root_ids(opts)
        perms = self.opts.force_mask if self.opts.force_mask is not None else DEFAULT_PERMS
        if parent:
            pdir = self.dir(parent)
            if not pdir.exists():
                raise LayerUnknown(f"parent {parent}")
            st = os.stat(pdir)
            uid, gid = st.st_uid, st.st_gid
            perms = os.stat(pdir / "diff").st_mode & 0o7777
        return perms, uid, gid

    @staticmethod
    def _mkdir(path: Path, mode: int, uid: int, gid: int) -> None:
        os.mkdir(path, mode)
        os.chown(path, uid, gid)
        os.chmod(path, mode)  # mkdir is filtered by the umask; Go's MkdirAs chmods too

    def remove(self, id: str) -> None:
        for home in self.layout.homes:
            self._remove_from(home / id)

    def _remove_from(self, d: Path) -> None:
        with contextlib.suppress(OSError):
            lid = (d / "link").read_text()
            if lid and "/" not in lid:
                os.unlink(d.parent / LINK_DIR / lid)
        if not os.path.lexists(d):
            return
        # A mount left on merged/ would make the removal fail half-way: detach it first. A leaked
        # ID-mapped mount under mapped/ is worse: it shows the whole home, which the removal would
        # empty.
        if mounting.is_mountpoint(str(d / "merged")):
            mounting.unmount(str(d / "merged"))
        with contextlib.suppress(OSError):
            idmapped.detach([m.path for m in os.scandir(d / "mapped")])
        remove_tree(d)  # read-only dirs made writable as it goes, as Go's EnsureRemoveAll

    def metadata(self, id: str) -> dict[str, str]:
        d = self.dir(id)
        if not d.exists():
            raise LayerUnknown(id)
        md = {"WorkDir": str(d / "work"), "MergedDir": str(d / "merged"), "UpperDir": str(d / "diff")}
        lowers = self.layout.lower_diff_dirs(id)
        if lowers:
            md["LowerDir"] = ":".join(str(p) for p in lowers)
        return md

    def is_parent(self, id: str, parent: str | None) -> bool:
        try:
            lowers = self.layout.lower_diff_dirs(id)
        except OSError:
            return False
        if not parent:
            return not lowers
        return bool(lowers) and lowers[0].parent == self.dir(parent)

    # -- mounting ----------------------------------------------------------------------------

    def _lower_paths(self, id: str, d: Path) -> tuple[list[str], int | None]:
        """Absolute lower dirs (through the ``l/`` links), plus the first one's mode if known."""
        perms: int | None = None
        lowers: list[str] = []
        link = self.layout.read_link(id)
        n = 1
        while (d / diff_suffix("diff", n)).is_dir():
            if perms is None:
                perms = os.stat(d / diff_suffix("diff", n)).st_mode & 0o7777
            lowers.append(str(d.parent / LINK_DIR / link / ".." / diff_suffix("diff", n)))
            n += 1
        for entry in self.layout.lower_entries(id):
            lower = self.layout.resolve_lower_str(entry)
            if perms is None:
                with contextlib.suppress(OSError):
                    perms = os.stat(lower).st_mode & 0o7777
            lowers.append(lower)
            n = 1
            while os.path.isdir(f"{lower}/../diff{n}"):  # diffN left by update_layer_id_map
                lowers.append(f"{lower}/../diff{n}")
                n += 1
        return lowers, perms

    def _mount_options(self, opts: MountOpts) -> list[str]:
        configured = [o for o in self.opts.mount_options.split(",") if o]
        options = list(opts.options) if opts.options else list(configured)
        if opts.options and "metacopy=on" in configured and "metacopy=on" not in options \
                and self.using_metacopy:
            options.append("metacopy=on")
        if not self.using_metacopy:
            options = [o for o in options if o != "metacopy=on"]
        if not self.opts.mount_program and fsinfo.rootless():
            options.append("userxattr")
        if opts.volatile and "volatile" not in options and self.supports_volatile():
            options.append("volatile")
        if opts.mount_label:
            options.append(f'context="{opts.mount_label}"')
        return options

    def get(self, id: str, opts: MountOpts) -> Path:
        d, in_additional = self.layout.dir2(id)
        if not d.exists():
            raise LayerUnknown(id)
        options = self._mount_options(opts)
        read_write = not in_additional and "ro" not in options
        shifting = not opts.disable_shifting and self.supports_shifting(opts.uid_map, opts.gid_map)
        lowers, perms = self._lower_paths(id, d)
        if len(lowers) > MAX_LOWERS:
            raise OverlayError("max depth exceeded")
        if not lowers:
            lowers = [str(d / "empty")]
        if perms is None:
            perms = self.opts.force_mask if self.opts.force_mask is not None else DEFAULT_PERMS
        diff = d / "diff"
        if not diff.exists() and not in_additional:
            # Owned by the mount's root, as Go HEAD: a user namespace needs it to copy up.
            self._mkdir(diff, perms, *self._root_ids(CreateOpts(uid_map=opts.uid_map,
                                                                gid_map=opts.gid_map)))
        merged = self.mount_path(id)
        merged.mkdir(mode=0o700, parents=True, exist_ok=True)
        work = d / "work"
        with contextlib.suppress(FileNotFoundError):
            remove_tree(work / "work" / "incompat" / "volatile")
        # Go maps the lowers only, never the upper: files the container creates land in diff/
        # with the IDs the caller wrote them as.
        attached: list[str] = []
        try:
            if shifting and opts.uid_map and opts.gid_map and not self.opts.mount_program:
                try:
                    with idmapped.user_namespace(opts.uid_map, opts.gid_map) as ns:
                        lowers = idmapped.map_lowers(lowers, self.home / id / "mapped", ns, attached)
                except OSError as exc:
                    raise OverlayError(str(exc)) from None
            if read_write:
                spec = mounting.OverlayMount(lowers=list(lowers), upper=str(diff), work=str(work),
                                             options=options)
            else:
                spec = mounting.OverlayMount(lowers=[str(diff), *lowers], options=options)
            try:
                if self.opts.mount_program:
                    self._mount_program(spec, merged, opts if shifting else None)
                else:
                    self._mount_kernel(spec, merged, d)
            except OSError as exc:
                data = spec.data_string()
                if len(data) > 400:
                    data = data[:400] + f"... ({len(spec.lowers)} lowers)"
                raise OverlayError(f"creating overlay mount to {merged}, mount_data={data!r}: "
                                   f"{exc.strerror or exc}") from None
        finally:
            # The overlay holds its own references to the mapped lowers.
            idmapped.detach(attached)
        return merged

    def _mount_kernel(self, spec: mounting.OverlayMount, merged: Path, d: Path) -> None:
        str_lowers = [p for p in spec.lowers if isinstance(p, str)]
        if len(str_lowers) <= stack.KERNEL_MAX_LOWERS:
            mounting.mount_overlay(spec, str(merged), self.home)
            return
        if not mounting.fd_lowers_usable():
            raise OSError(errno.E2BIG, f"{len(str_lowers)} lower layers need a kernel with the new "
                          "mount API taking layers as file descriptors (6.13 or later)")
        inner_opts = [o for o in spec.options if o not in ("volatile", "ro")
                      and not o.startswith("context=")]
        scratch = self._scratch_dir(d)
        lowers, fds = stack.nested_lowers(str_lowers, scratch, inner_opts,
                                          userxattr="userxattr" in spec.options)
        try:
            mounting.mount_overlay(evolve(spec, lowers=lowers), str(merged), self.home)
        finally:
            for fd in fds:
                os.close(fd)

    def _id_mapping_options(self, opts: MountOpts) -> str:
        """fuse-overlayfs's own mapping options (Go ``optsAppendMappings``)."""
        uid_map = opts.uid_map or self.config.uid_map
        gid_map = opts.gid_map or self.config.gid_map
        if not uid_map:
            return ""

        def render(maps: Sequence[IDMap], kind: str) -> str:
            if len(maps) == 1 and maps[0].size == 1:
                return f"squash_to_{kind}={maps[0].host_id}"
            return f"{kind}mapping=" + ":".join(
                f"{m.container_id}:{m.host_id}:{m.size}" for m in maps)

        return f",{render(uid_map, 'uid')},{render(gid_map, 'gid')}"

    def _mount_program(self, spec: mounting.OverlayMount, merged: Path,
                       shift: MountOpts | None = None) -> None:
        data = spec.data_string()
        if shift is not None:
            data += self._id_mapping_options(shift)
        if self.opts.force_mask is not None:
            data += ",xattr_permissions=2"
        proc = subprocess.run([self.opts.mount_program, "-o", data, str(merged)], cwd=self.home,
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise OSError(errno.EIO, f"using mount program {self.opts.mount_program}: "
                          f"{'; '.join(proc.stderr.split(chr(10))).strip('; ') or '<stderr empty>'}")

    def put(self, id: str) -> None:
        d, in_additional = self.layout.dir2(id)
        if not d.exists():
            raise LayerUnknown(id)
        merged = (self.run_home / id / "merged") if in_additional else d / "merged"
        with contextlib.suppress(OSError):  # leaked by a process killed mid-mount
            idmapped.detach([m.path for m in os.scandir(self.home / id / "mapped")])
        unmounted = False
        if self.opts.mount_program:
            for prog in ("fusermount3", "fusermount"):
                exe = _which(prog)
                if exe and subprocess.run([exe, "-u", str(merged)], capture_output=True).returncode == 0:
                    unmounted = True
                    break
        if not unmounted:
            mounting.unmount(str(merged))
        with contextlib.suppress(OSError):
            remove_tree(self._scratch_dir(d))

    def _scratch_dir(self, d: Path) -> Path:
        """Where a deep stack's whiteout summaries live: never inside a read-only store."""
        return d / "stack" if d.parent in self.layout.homes else self.run_home / d.name / "stack"

    def mount_path(self, id: str) -> Path:
        d, in_additional = self.layout.dir2(id)
        return (self.run_home / id / "merged") if in_additional else d / "merged"

    def is_mounted(self, id: str, path: str) -> bool:
        return mounting.is_mountpoint(path, ("overlay", "fuse.", "fuse"))

    # -- content -----------------------------------------------------------------------------

    def _tar_options(self, opts: ApplyDiffOpts) -> ApplyOptions:
        from cs_core.drivers.api import ApplyOptions

        force_mask = self.opts.force_mask if self.opts.force_mask is not None else opts.force_mask
        return ApplyOptions(
            whiteout_format=self.whiteout_format,
            opaque_xattr=self._opaque_xattr(),
            uid_map=tuple(opts.uid_map), gid_map=tuple(opts.gid_map),
            ignore_chown_errors=opts.ignore_chown_errors or self.opts.ignore_chown_errors,
            force_mask=force_mask,
            progress=opts.progress,
        )

    def apply_diff(self, id: str, parent: str | None, stream: BinaryIO, opts: ApplyDiffOpts) -> ApplyResult:
        if not self.is_parent(id, parent):
            # Not on its real parent: Go lets the naive driver apply through a mount.
            return super().apply_diff(id, parent, stream, evolve(
                opts, ignore_chown_errors=opts.ignore_chown_errors or self.opts.ignore_chown_errors,
                force_mask=self.opts.force_mask if self.opts.force_mask is not None else opts.force_mask))
        return self._untar(self.dir(id) / "diff", stream, opts)

    def _untar(self, diff: Path, stream: BinaryIO, opts: ApplyDiffOpts) -> ApplyResult:
        from cs_core import ArchiveFormatError
        from cs_core.drivers.api import apply_tar

        try:
            return apply_tar(diff, stream, self._tar_options(opts), tar_split=opts.tar_split)
        except ArchiveFormatError as exc:
            # Go's overlay untars in a re-exec'd helper and reports it so, without a log line.
            raise ArchiveFormatError(f"processing tar file({exc}): exit status 1") from None

    # -- unlocked imports (cs_core.drivers.staging.TreeStager) -------------------------------

    def stage_tree(self, parent: str | None, opts: CreateOpts) -> StagedTree:
        # A new layer's diff/ starts empty whatever its parent holds: only its content is
        # staged, in a directory made as create makes diff/ (the tar's "./" may change it).
        perms, uid, gid = self._new_diff_attrs(parent, opts)
        layer_dir, lock = new_staging_dir(self.staging.base, perms)
        staged = StagedTree(layer_dir, layer_dir / CONTENT_DIR, lock)
        try:
            os.chown(staged.content, uid, gid)
        except BaseException:
            self.discard_staged_tree(staged)
            raise
        return staged

    def apply_staged_diff(self, staged: StagedTree, stream: BinaryIO,
                          opts: ApplyDiffOpts) -> ApplyResult:
        return self._untar(staged.content, stream, opts)

    def _created_entries(self, id: str) -> list[Path]:
        """Everything ``_create`` makes for ``id``: its files, its directories, its short link
        (made durable by its directory) and the directories holding them."""
        d = self.dir(id)
        return [d / "link", d / LOWER_FILE, d / "diff", d / "work", d / "merged", d / "empty", d,
                d.parent / LINK_DIR, d.parent]

    def flush_created(self, id: str, parent: str | None) -> bool:
        from cs_core.drivers.api import fsync_paths

        fsync_paths(self._created_entries(id))
        return True

    def commit_staged_tree(self, id: str, parent: str | None, staged: StagedTree,
                           opts: CreateOpts, writeable: bool) -> None:
        from cs_core.drivers.api import fsync_paths

        (self.create_read_write if writeable else self.create)(id, parent, opts)
        try:
            self.staging.move_into(StagedLayer(target=staged.content), self.dir(id) / "diff",
                                   None, as_is=True)
            # What create made and the exchange moved, durable before the record says so.
            fsync_paths(self._created_entries(id))
        except BaseException:
            with contextlib.suppress(Exception):
                self.remove(id)
            raise
        remove_staging_dir(staged.layer_dir, staged.lock)

    # -- staged layers (Go DriverWithDiffer) ---------------------------------------------------

    def prepare_staged(self, differ: Differ, opts: ApplyDiffOpts) -> StagedLayer:
        options = self._tar_options(opts)
        perms = options.force_mask if options.force_mask is not None else DEFAULT_PERMS
        target = self.staging.new(perms)
        try:
            staged = differ.apply_diff(target, target.parent, options)
        except BaseException:
            self.staging.remove(StagedLayer(target=target))
            raise
        staged.target = target
        return staged

    def apply_staged(self, id: str, parent: str | None, staged: StagedLayer) -> None:
        self.staging.move_into(staged, self.dir(id) / "diff",
                               self._staged_root_mode(parent, staged.root_dir_mode))
        self.staging.remove(staged)

    def _staged_root_mode(self, parent: str | None, mode: int | None) -> int | None:
        if mode is None and self.opts.force_mask is None and parent:
            # As Go: a layer whose content does not set its root's mode inherits its parent's.
            mode = os.stat(self.dir(parent) / "diff").st_mode & 0o7777
        return mode

    def cleanup_staged(self, staged: StagedLayer) -> None:
        self.staging.remove(staged)

    def _native_ok(self, id: str, parent: str | None) -> bool:
        return not self.use_naive_diff() and self.is_parent(id, parent)

    def _opaque_xattr(self) -> str:
        # Unprivileged overlay mounts use userxattr, so the opaque marker is a user.* xattr.
        return "user.overlay.opaque" if fsinfo.rootless() else "trusted.overlay.opaque"

    def diff(self, id: str, parent: str | None, uid_map: Sequence[IDMap] = (),
             gid_map: Sequence[IDMap] = (), parent_maps: IDMapPair | None = None) -> BinaryIO:
        if not self._native_ok(id, parent):
            return super().diff(id, parent, uid_map, gid_map, parent_maps)
        from cs_core.drivers.api import export_tree

        root = self.dir(id) / "diff"
        lowers = self.layout.lower_diff_dirs(id)

        def produce(out: BinaryIO) -> None:
            export_tree(root, out, whiteout_format=self.whiteout_format,
                        opaque_xattr=self._opaque_xattr(), lowers=lowers,
                        uid_map=tuple(uid_map), gid_map=tuple(gid_map))

        return streaming(produce)

    def changes(self, id: str, parent: str | None, maps: IDMapPair = NO_MAPS,
                parent_maps: IDMapPair = NO_MAPS) -> list[Change]:
        if not self._native_ok(id, parent):
            return super().changes(id, parent, maps, parent_maps)
        from cs_core.drivers.api import overlay_changes

        return overlay_changes(self.dir(id) / "diff", self.layout.lower_diff_dirs(id),
                               self._opaque_xattr())

    def diff_size(self, id: str, parent: str | None, maps: IDMapPair = NO_MAPS,
                  parent_maps: IDMapPair = NO_MAPS) -> int:
        if not self.opts.mount_program and (self.use_naive_diff() or not self.is_parent(id, parent)):
            return super().diff_size(id, parent, maps, parent_maps)
        return disk_usage(self.dir(id) / "diff")

    def diff_getter(self, id: str) -> FileGetter:
        # Unlike Go, include diff1.. (left by update_layer_id_map) of the layer and its lowers:
        # they hold files of the layer's tree too.
        dirs: list[Path] = []
        for top in (self.dir(id) / "diff", *self.layout.lower_diff_dirs(id)):
            dirs.append(top)
            n = 1
            while (top.parent / diff_suffix("diff", n)).is_dir():
                dirs.append(top.parent / diff_suffix("diff", n))
                n += 1
        return DiffDirGetter(dirs)

    def read_write_disk_usage(self, id: str) -> int:
        return disk_usage(self.dir(id) / "diff")

    def update_layer_id_map(
        self, id: str, to_container: tuple[Sequence[IDMap], Sequence[IDMap]],
        to_host: tuple[Sequence[IDMap], Sequence[IDMap]], mount_label: str = "",
    ) -> None:
        # Chown through the mount (copy-ups land in diff/), then rotate diff -> diff1 so the
        # re-owned files become a lower of this layer and diff/ starts empty again, as Go does.
        super().update_layer_id_map(id, to_container, to_host, mount_label)
        diff = self.dir(id) / "diff"
        perms = self.opts.force_mask if self.opts.force_mask is not None else \
            os.stat(diff).st_mode & 0o7777
        n = 0
        while (diff.parent / diff_suffix("diff", n)).exists():
            n += 1
        while n > 0:
            os.rename(diff.parent / diff_suffix("diff", n - 1), diff.parent / diff_suffix("diff", n))
            n -= 1
        host_uids, host_gids = to_host
        uid = next((m.host_id for m in host_uids if m.container_id == 0), 0)
        gid = next((m.host_id for m in host_gids if m.container_id == 0), 0)
        work = diff.parent / "work"
        with contextlib.suppress(OSError):
            remove_tree(work)
        self._mkdir(work, DEFAULT_PERMS, uid, gid)
        self._mkdir(diff, perms, uid, gid)


def streaming(produce: Callable[[BinaryIO], None]) -> BinaryIO:
    """Run ``produce(out)`` in a thread and hand back the reading end, as Go's io.Pipe."""
    from cs_core.drivers.api import PipeStream  # the naive differ: only commands that diff

    return io.BufferedReader(PipeStream(produce), 1 << 16)  # type: ignore[return-value]
