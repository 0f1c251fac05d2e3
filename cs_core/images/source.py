"""Reading an image from an OCI layout, an OCI archive or a docker-archive, verifying as we go.

Every blob is checked against the digest (and size) that names it before anything is stored.
Archives are read in place through :mod:`tarfile` (members looked up by name; nothing is
extracted), so a hostile archive cannot write anywhere.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, cast

import attrs

from cs_core.images.reference import ImageError, Platform, TransportRef, host_platform

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_GZIP = DOCKER_LAYER + ".gzip"
REF_NAME = "org.opencontainers.image.ref.name"

#: Manifests, indexes and configs are read whole; past this they are refused, not loaded.
MAX_METADATA = 16 << 20
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_CHUNK = 1 << 20


@attrs.frozen
class LayerBlob:
    """One layer as the manifest names it."""

    digest: str
    size: int
    media_type: str


@attrs.frozen
class SourceImage:
    """One single-platform image, its metadata verified; layers are read through ``open_blob``."""

    manifest: bytes
    manifest_digest: str
    config: bytes
    config_digest: str
    layers: tuple[LayerBlob, ...]
    diff_ids: tuple[str, ...]
    #: The index or list the manifest was chosen from (c/image stores it too).
    toplevel: bytes | None = None
    toplevel_digest: str = ""
    #: Names the archive carries (docker-archive ``RepoTags``).
    names: tuple[str, ...] = ()


def sha256_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def check_digest(digest: object, what: str) -> str:
    if not isinstance(digest, str) or not _DIGEST.match(digest):
        raise ImageError(f"{what}: unsupported or invalid digest {digest!r}")
    return digest


def _json(data: bytes, what: str) -> Any:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ImageError(f"{what}: not valid JSON: {exc}") from None


class BlobSource:
    """Where blobs come from; subclasses open them by digest."""

    def __init__(self, ref: TransportRef) -> None:
        self.ref = ref

    def open_raw(self, digest: str) -> BinaryIO:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def read_blob(self, digest: str, size: int | None, what: str) -> bytes:
        """A small blob, read whole and verified."""
        if size is not None and size > MAX_METADATA:
            raise ImageError(f"{what} {digest} is too large ({size} bytes)")
        with self.open_raw(digest) as f:
            data = _read_bounded(f, what, digest)
        _verify(digest, size, sha256_of(data), len(data), what)
        return data

    def verify_blob(self, digest: str, size: int | None, what: str,
                    progress: Callable[[int], None] | None = None) -> None:
        """Read a (large) blob through once, checking its digest and size."""
        h = hashlib.sha256()
        n = 0
        with self.open_raw(digest) as f:
            while chunk := _read(f, _CHUNK, what, digest):
                h.update(chunk)
                n += len(chunk)
                if size is not None and n > size:
                    break
        _verify(digest, size, "sha256:" + h.hexdigest(), n, what)

    @contextlib.contextmanager
    def open_blob(self, digest: str) -> Iterator[BinaryIO]:
        with self.open_raw(digest) as f:
            yield f


def _read(f: BinaryIO, n: int, what: str, digest: str) -> bytes:
    try:
        return f.read(n)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise ImageError(f"reading {what} {digest}: {exc}") from None


def _read_bounded(f: BinaryIO, what: str, digest: str) -> bytes:
    data = _read(f, MAX_METADATA + 1, what, digest)
    if len(data) > MAX_METADATA:
        raise ImageError(f"{what} {digest} is too large")
    return data


def _verify(digest: str, size: int | None, actual: str, actual_size: int, what: str) -> None:
    if actual != digest:
        raise ImageError(f"{what} {digest} does not match its digest (content is {actual})")
    if size is not None and size != actual_size:
        raise ImageError(f"{what} {digest} is {actual_size} bytes, the manifest says {size}")


class OCIDirSource(BlobSource):
    def __init__(self, ref: TransportRef) -> None:
        super().__init__(ref)
        self.root = Path(ref.path)
        if not (self.root / "index.json").is_file():
            raise ImageError(f"{ref.path}: not an OCI layout (no index.json)")

    def read_file(self, name: str) -> bytes:
        try:
            with open(self.root / name, "rb") as f:
                return _read_bounded(f, name, "")
        except OSError as exc:
            raise ImageError(f"reading {self.root / name}: {exc.strerror}") from None

    def open_raw(self, digest: str) -> BinaryIO:
        algo, _, hexpart = check_digest(digest, "blob").partition(":")
        path = self.root / "blobs" / algo / hexpart
        try:
            return open(path, "rb")
        except OSError as exc:
            raise ImageError(f"blob {digest} is missing from {self.ref.path}: "
                             f"{exc.strerror}") from None


class TarSource(BlobSource):
    """An archive read in place: members by normalised name."""

    def __init__(self, ref: TransportRef) -> None:
        super().__init__(ref)
        try:
            self.tar = tarfile.open(ref.path, "r:*")  # noqa: SIM115  (closed by close())
            self.members = {_norm(m.name): m for m in self.tar.getmembers()}
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise ImageError(f"reading archive {ref.path}: {exc}") from None

    def close(self) -> None:
        self.tar.close()

    def has(self, name: str) -> bool:
        return _norm(name) in self.members

    def open_member(self, name: str, what: str) -> BinaryIO:
        member = self.members.get(_norm(name))
        if member is None:
            raise ImageError(f"{what} {name!r} is missing from archive {self.ref.path}")
        try:
            f = self.tar.extractfile(member)
        except (tarfile.TarError, KeyError, OSError) as exc:
            raise ImageError(f"reading {name!r} from archive {self.ref.path}: {exc}") from None
        if f is None:
            raise ImageError(f"{what} {name!r} in archive {self.ref.path} is not a file")
        return cast(BinaryIO, f)

    def read_file(self, name: str) -> bytes:
        with self.open_member(name, "file") as f:
            return _read_bounded(f, name, "")


class OCIArchiveSource(TarSource):
    def __init__(self, ref: TransportRef) -> None:
        super().__init__(ref)
        if not self.has("index.json"):
            self.close()
            raise ImageError(f"{ref.path}: not an OCI archive (no index.json)")

    def open_raw(self, digest: str) -> BinaryIO:
        algo, _, hexpart = check_digest(digest, "blob").partition(":")
        return self.open_member(f"blobs/{algo}/{hexpart}", "blob")


def _norm(name: str) -> str:
    return os.path.normpath("/" + name).lstrip("/")


# -- OCI layouts (directory or archive) -------------------------------------------------------

def read_oci(src: OCIDirSource | OCIArchiveSource, platform: Platform | None) -> SourceImage:
    index = _json(src.read_file("index.json"), "index.json")
    if not isinstance(index, dict) or not isinstance(index.get("manifests"), list):
        raise ImageError(f"{src.ref.path}: index.json has no manifests list")
    desc = _pick_ref(index["manifests"], src.ref)
    return _resolve(src, desc, platform)


def _pick_ref(manifests: list[Any], ref: TransportRef) -> dict[str, Any]:
    descs = [d for d in manifests if isinstance(d, dict)]
    if ref.ref:
        found = [d for d in descs if (d.get("annotations") or {}).get(REF_NAME) == ref.ref]
        if not found:
            raise ImageError(f"no image with reference {ref.ref!r} in {ref.path}")
        return found[0]
    if len(descs) != 1:
        raise ImageError(f"{ref.path} holds {len(descs)} images: name one as "
                         f"{ref.transport}:{ref.path}:REF")
    return descs[0]


def _resolve(src: BlobSource, desc: dict[str, Any], platform: Platform | None) -> SourceImage:
    digest = check_digest(desc.get("digest"), "manifest")
    data = src.read_blob(digest, _size(desc), "manifest")
    doc = _json(data, f"manifest {digest}")
    media = _media_type(desc, doc)
    if media in (OCI_INDEX, DOCKER_LIST):
        child = _pick_platform(doc, platform or host_platform(), digest)
        image = _resolve(src, child, platform)
        return attrs.evolve(image, toplevel=data, toplevel_digest=digest)
    if media not in (OCI_MANIFEST, DOCKER_MANIFEST):
        raise ImageError(f"manifest {digest}: unsupported manifest type {media!r}")
    return _single(src, data, digest, doc)


def _media_type(desc: dict[str, Any], doc: Any) -> str:
    if isinstance(doc, dict) and isinstance(doc.get("mediaType"), str):
        return str(doc["mediaType"])
    if isinstance(doc, dict) and "manifests" in doc:
        return OCI_INDEX
    return str(desc.get("mediaType") or OCI_MANIFEST)


def _size(desc: dict[str, Any]) -> int | None:
    size = desc.get("size")
    if size is None:
        return None
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ImageError(f"descriptor {desc.get('digest')}: invalid size {size!r}")
    return size


def _pick_platform(doc: Any, want: Platform, digest: str) -> dict[str, Any]:
    """The entry for ``want``: an exact variant first, then any variant of its OS and arch."""
    entries = [d for d in (doc.get("manifests") or []) if isinstance(d, dict)]
    plats: list[dict[str, Any]] = [d["platform"] if isinstance(d.get("platform"), dict) else {}
                                   for d in entries]
    for exact in (True, False):
        for d, p in zip(entries, plats, strict=True):
            if (p.get("os"), p.get("architecture")) != (want.os, want.architecture):
                continue
            if exact and want.variant and p.get("variant", "") not in ("", want.variant):
                continue
            return d
    seen = [f"{p.get('os')}/{p.get('architecture')}" + (f"/{p['variant']}" if p.get("variant")
                                                        else "") for p in plats]
    choices = ", ".join(dict.fromkeys(seen)) or "none"
    raise ImageError(f"index {digest} has no image for platform {want} (it has: {choices})")


def _single(src: BlobSource, data: bytes, digest: str, doc: Any) -> SourceImage:
    if not isinstance(doc, dict) or doc.get("schemaVersion") != 2:
        raise ImageError(f"manifest {digest}: unsupported schema version (only 2 is)")
    config_desc = doc.get("config")
    if not isinstance(config_desc, dict):
        raise ImageError(f"manifest {digest}: no config")
    config_digest = check_digest(config_desc.get("digest"), "config")
    config = src.read_blob(config_digest, _size(config_desc), "config")
    layers = []
    for d in doc.get("layers") or []:
        if not isinstance(d, dict):
            raise ImageError(f"manifest {digest}: invalid layer descriptor")
        size = _size(d)
        layers.append(LayerBlob(check_digest(d.get("digest"), "layer"),
                                -1 if size is None else size, str(d.get("mediaType", ""))))
        _check_layer_type(layers[-1])
    diff_ids = config_diff_ids(config, config_digest)
    if len(diff_ids) != len(layers):
        raise ImageError(f"manifest {digest} lists {len(layers)} layers, its config "
                         f"{len(diff_ids)} diff IDs")
    return SourceImage(data, digest, config, config_digest, tuple(layers), tuple(diff_ids))


def _check_layer_type(layer: LayerBlob) -> None:
    base = layer.media_type.replace(".nondistributable", "")
    ok = base in (OCI_LAYER, OCI_LAYER + "+gzip", OCI_LAYER + "+zstd", DOCKER_LAYER,
                  DOCKER_LAYER_GZIP, "")
    if not ok:
        raise ImageError(f"layer {layer.digest}: unsupported media type {layer.media_type!r}")


def config_diff_ids(config: bytes, digest: str) -> list[str]:
    doc = _json(config, f"config {digest}")
    rootfs = doc.get("rootfs") if isinstance(doc, dict) else None
    ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(ids, list):
        raise ImageError(f"config {digest}: no rootfs.diff_ids")
    return [check_digest(x, f"config {digest} diff ID") for x in ids]


# -- docker-archive -----------------------------------------------------------------------------

class DockerArchiveSource(TarSource):
    """``docker save`` / ``podman save`` output; blobs are found by the digest we computed."""

    def __init__(self, ref: TransportRef) -> None:
        super().__init__(ref)
        self.paths: dict[str, str] = {}

    def open_raw(self, digest: str) -> BinaryIO:
        path = self.paths.get(digest)
        if path is None:
            raise ImageError(f"blob {digest} is missing from archive {self.ref.path}")
        return self.open_member(path, "blob")

    def add_path(self, path: str, what: str) -> str:
        """Digest the member at ``path`` (read through once) and remember where it is."""
        h = hashlib.sha256()
        with self.open_member(path, what) as f:
            while chunk := _read(f, _CHUNK, what, path):
                h.update(chunk)
        digest = "sha256:" + h.hexdigest()
        self.paths[digest] = path
        return digest


def read_docker_archive(src: DockerArchiveSource) -> SourceImage:
    items = _json(src.read_file("manifest.json"), "manifest.json")
    if not isinstance(items, list) or not items or not all(isinstance(i, dict) for i in items):
        raise ImageError(f"{src.ref.path}: manifest.json lists no images")
    item = _pick_docker_item(items, src.ref)
    config_path = item.get("Config")
    if not isinstance(config_path, str):
        raise ImageError(f"{src.ref.path}: manifest.json has no Config")
    config_digest = src.add_path(config_path, "config")
    stem = Path(config_path).name.removesuffix(".json")
    if re.fullmatch(r"[0-9a-f]{64}", stem) and f"sha256:{stem}" != config_digest:
        raise ImageError(f"config {config_path} does not match its digest "
                         f"(content is {config_digest})")
    config = src.read_blob(config_digest, None, "config")
    diff_ids = config_diff_ids(config, config_digest)
    paths = item.get("Layers")
    if not isinstance(paths, list) or len(paths) != len(diff_ids):
        raise ImageError(f"{src.ref.path}: manifest.json lists {len(paths or [])} layers, "
                         f"the config {len(diff_ids)} diff IDs")
    layers = []
    for path, diff_id in zip(paths, diff_ids, strict=True):
        if not isinstance(path, str):
            raise ImageError(f"{src.ref.path}: invalid layer path {path!r}")
        blob_digest = src.add_path(path, "layer")
        # As c/image's docker-archive source: the manifest names layers by diff ID.
        src.paths[diff_id] = path
        layers.append(LayerBlob(diff_id, _member_size(src, path), DOCKER_LAYER_GZIP))
        src.paths.setdefault(blob_digest, path)
    manifest = _docker_manifest(config, config_digest, layers)
    tags = [t for t in item.get("RepoTags") or [] if isinstance(t, str)]
    return SourceImage(manifest, sha256_of(manifest), config, config_digest, tuple(layers),
                       tuple(diff_ids), names=tuple(tags))


def _member_size(src: TarSource, path: str) -> int:
    """The size of the file at ``path``, through the archive's links (docker save's layers)."""
    with src.open_member(path, "layer") as f:
        return f.seek(0, os.SEEK_END)


def _pick_docker_item(items: list[dict[str, Any]], ref: TransportRef) -> dict[str, Any]:
    if not ref.ref:
        if len(items) != 1:
            raise ImageError(f"{ref.path} holds {len(items)} images: name one as "
                             f"docker-archive:{ref.path}:NAME or :@N")
        return items[0]
    if ref.ref.startswith("@"):
        try:
            return items[int(ref.ref[1:])]
        except (ValueError, IndexError):
            raise ImageError(f"no image {ref.ref} in {ref.path} ({len(items)} images)") from None
    from cs_core.images.reference import normalize_name

    want = normalize_name(ref.ref)
    for item in items:
        for tag in item.get("RepoTags") or []:
            if isinstance(tag, str) and normalize_name(tag) == want:
                return item
    raise ImageError(f"no image named {ref.ref!r} in {ref.path}")


def _docker_manifest(config: bytes, config_digest: str, layers: list[LayerBlob]) -> bytes:
    """The schema 2 manifest c/image generates for an archive, serialised as Go does."""
    doc = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": {"mediaType": DOCKER_CONFIG, "size": len(config), "digest": config_digest},
        "layers": [{"mediaType": layer.media_type, "size": layer.size, "digest": layer.digest}
                   for layer in layers],
    }
    return go_json(doc)


def go_json(doc: object) -> bytes:
    """``json.Marshal``'s bytes: compact, no ASCII escaping of non-ASCII, ``<>&`` escaped."""
    text = json.dumps(doc, separators=(",", ":"), ensure_ascii=False)
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .encode())


@contextlib.contextmanager
def open_source(ref: TransportRef, platform: Platform | None = None
                ) -> Iterator[tuple[BlobSource, SourceImage]]:
    """Open ``ref`` and read (and verify) its manifest and config."""
    src: BlobSource
    if ref.transport == "oci":
        src = OCIDirSource(ref)
    elif ref.transport == "oci-archive":
        src = OCIArchiveSource(ref)
    else:
        src = DockerArchiveSource(ref)
    try:
        if isinstance(src, DockerArchiveSource):
            image = read_docker_archive(src)
        else:
            assert isinstance(src, (OCIDirSource, OCIArchiveSource))
            image = read_oci(src, platform)
        yield src, image
    finally:
        src.close()
