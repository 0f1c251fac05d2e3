"""import-image / export-image against skopeo and podman (Go's c/image) on real stores."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cs_core.images import chain_layer_ids, export_image, import_image
from cs_core.store import Store, open_store
from cs_core.testing import requires_command

CLI = [sys.executable, "-m", "cs_core"]
BUSYBOX = Path("/bin/busybox")


def _tar(files: list[tuple[str, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.mtime = 1700000000
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size, info.mode = len(data), 0o755
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _put(root: Path, data: bytes) -> str:
    digest = hashlib.sha256(data).hexdigest()
    (root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    (root / "blobs" / "sha256" / digest).write_bytes(data)
    return "sha256:" + digest


def base_layer() -> bytes:
    return _tar([("bin", None), ("bin/busybox", BUSYBOX.read_bytes())])


def make_oci(root: Path, layers: list[bytes], *, ref: str = "latest", tag: str = "x",
             platform_index: bool = False, arch: str = "amd64") -> dict[str, Any]:
    """An OCI layout written by hand: gzip layers, a config whose diff IDs match."""
    descs, diff_ids = [], []
    for plain in layers:
        blob = gzip.compress(plain, mtime=0)
        descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                      "digest": _put(root, blob), "size": len(blob)})
        diff_ids.append("sha256:" + hashlib.sha256(plain).hexdigest())
    config = json.dumps({
        "created": "2024-01-02T03:04:05Z", "architecture": arch, "os": "linux",
        "config": {"Cmd": ["/bin/busybox", "echo", tag]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": _put(root, config), "size": len(config)},
        "layers": descs}).encode()
    entry = {"mediaType": "application/vnd.oci.image.manifest.v1+json",
             "digest": _put(root, manifest), "size": len(manifest)}
    if platform_index:
        index = json.dumps({"schemaVersion": 2,
                            "mediaType": "application/vnd.oci.image.index.v1+json",
                            "manifests": [{**entry, "platform": {"os": "linux",
                                                                 "architecture": arch}}]}).encode()
        entry = {"mediaType": "application/vnd.oci.image.index.v1+json",
                 "digest": _put(root, index), "size": len(index)}
    entry["annotations"] = {"org.opencontainers.image.ref.name": ref}
    (root / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [entry]}))
    (root / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    return {"diff_ids": diff_ids, "config": config, "layers": descs, "entry": entry}


class Roots:
    def __init__(self, base: Path, name: str) -> None:
        self.graph = base / name / "graph"
        # podman refuses run roots longer than 50 characters; pytest's paths are longer.
        self.run = Path(tempfile.mkdtemp(prefix="csimg-"))
        _RUN_ROOTS.append(self.run)

    @property
    def cs_ref(self) -> str:
        return f"containers-storage:[vfs@{self.graph}+{self.run}]"

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([*CLI, "--graph", str(self.graph), "--run", str(self.run),
                               "-s", "vfs", *args], capture_output=True, text=True)
        if check:
            assert proc.returncode == 0, proc.stderr
        return proc

    def podman(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["podman", "--root", str(self.graph), "--runroot", str(self.run),
                               "--storage-driver", "vfs", *args], capture_output=True,
                              text=True, check=True)

    @contextlib.contextmanager
    def open(self) -> Iterator[Store]:
        store = open_store(graph_root=str(self.graph), run_root=str(self.run), driver_name="vfs")
        try:
            yield store
        finally:
            store.shutdown(force=True)

    def records(self) -> tuple[Any, Any]:
        images, layers = (json.loads(p.read_text()) if p.exists() else []
                          for p in (self.graph / "vfs-images" / "images.json",
                                    self.graph / "vfs-layers" / "layers.json"))
        for layer in layers:
            del layer["created"]  # the only field that must differ
        return images, layers


_RUN_ROOTS: list[Path] = []


@pytest.fixture(autouse=True)
def _remove_run_roots() -> Iterator[None]:
    yield
    while _RUN_ROOTS:
        shutil.rmtree(_RUN_ROOTS.pop(), ignore_errors=True)


@pytest.fixture
def tools() -> None:
    requires_command("skopeo", "podman")


def test_import_writes_what_skopeo_writes(tmp_path: Path, tools: None) -> None:
    oci = tmp_path / "oci"
    make_oci(oci, [base_layer(), _tar([("etc", None), ("etc/hello", b"hi\n")])])
    go, ours = Roots(tmp_path, "go"), Roots(tmp_path, "ours")
    subprocess.run(["skopeo", "copy", "-q", f"oci:{oci}:latest", go.cs_ref + "busybox"],
                   check=True)
    ours.cli("import-image", f"oci:{oci}:latest", "busybox")
    # Image ID, names, history, digests, big data, metadata, created; layer IDs and digests.
    assert ours.records() == go.records()


def test_podman_and_skopeo_read_our_import(tmp_path: Path, tools: None) -> None:
    oci = tmp_path / "oci"
    made = make_oci(oci, [base_layer()], platform_index=True)
    ours = Roots(tmp_path, "ours")
    image_id = ours.cli("import-image", f"oci:{oci}", "localhost/bb:1").stdout.strip()
    listed = ours.podman("images", "--format", "{{.ID}} {{.Repository}}:{{.Tag}}").stdout
    assert listed.split() == [image_id[:12], "localhost/bb:1"]
    inspected = json.loads(ours.podman("image", "inspect", "localhost/bb:1").stdout)[0]
    assert inspected["Id"] == image_id
    assert inspected["RootFS"]["Layers"] == made["diff_ids"]
    # The index the manifest was picked from is the image's digest, as for a podman pull.
    assert inspected["Digest"] == made["entry"]["digest"]
    out = subprocess.run(["skopeo", "inspect", ours.cs_ref + "localhost/bb:1"],
                         capture_output=True, text=True, check=True).stdout
    assert json.loads(out)["Layers"] == [d["digest"] for d in made["layers"]]
    found = ours.cli("images-by-digest", made["entry"]["digest"]).stdout
    assert found.splitlines()[0] == image_id


@pytest.mark.parametrize("compress", ["gzip", "zstd", "none"])
def test_export_reimports_to_the_same_image(tmp_path: Path, tools: None, compress: str) -> None:
    oci = tmp_path / "oci"
    made = make_oci(oci, [base_layer(), _tar([("etc", None), ("etc/x", b"x" * 5000)])])
    go = Roots(tmp_path, "go")
    # An image that Go (skopeo) wrote into a store...
    subprocess.run(["skopeo", "copy", "-q", f"oci:{oci}:latest", go.cs_ref + "busybox"],
                   check=True)
    out = tmp_path / "out"
    go.cli("export-image", "--compress", compress, "busybox", f"oci:{out}:v1")
    # ...exports with ours into a layout skopeo accepts, with the same config and diff IDs.
    config = json.loads(subprocess.run(["skopeo", "inspect", "--config", f"oci:{out}:v1"],
                                       capture_output=True, text=True, check=True).stdout)
    assert config["rootfs"]["diff_ids"] == made["diff_ids"]
    subprocess.run(["skopeo", "copy", "-q", f"oci:{out}:v1", f"oci:{tmp_path / 'copy'}:c"],
                   check=True)
    again = Roots(tmp_path, "again")
    image_id = again.cli("import-image", f"oci:{out}:v1", "busybox").stdout.strip()
    assert image_id == hashlib.sha256(made["config"]).hexdigest()
    with again.open() as store:
        layers = {layer.id: layer for layer in store.layers()}
    assert sorted(layers) == sorted(chain_layer_ids(made["diff_ids"]))
    assert sorted(x.uncompressed_digest for x in layers.values()) == sorted(made["diff_ids"])


def test_docker_archive_round_trip_through_podman(tmp_path: Path, tools: None) -> None:
    oci = tmp_path / "oci"
    made = make_oci(oci, [base_layer()])
    ours = Roots(tmp_path, "ours")
    ours.cli("import-image", f"oci:{oci}", "bb")
    archive = tmp_path / "bb.tar"
    ours.cli("export-image", "bb", f"docker-archive:{archive}")
    pod = Roots(tmp_path, "podman")
    pod.podman("load", "-q", "-i", str(archive))
    pod_id = pod.podman("images", "-q", "--no-trunc").stdout.strip()
    assert pod_id == "sha256:" + hashlib.sha256(made["config"]).hexdigest()
    # podman save's archive imports with ours to the same image and layer.
    saved = tmp_path / "saved.tar"
    pod.podman("save", "-q", "-o", str(saved), "docker.io/library/bb:latest")
    back = Roots(tmp_path, "back")
    image_id = back.cli("import-image", f"docker-archive:{saved}").stdout.strip()
    assert "sha256:" + image_id == pod_id
    with back.open() as store:
        assert store.image(image_id).names == ["docker.io/library/bb:latest"]
        assert [x.id for x in store.layers()] == chain_layer_ids(made["diff_ids"])
    # And into the same records skopeo writes from that archive (generated manifest included).
    go = Roots(tmp_path, "go")
    subprocess.run(["skopeo", "copy", "-q", f"docker-archive:{saved}",
                    go.cs_ref + "docker.io/library/bb:latest"], check=True)
    assert back.records() == go.records()


def test_shared_base_is_stored_once(tmp_path: Path) -> None:
    base = base_layer()
    first, second = tmp_path / "a", tmp_path / "b"
    make_oci(first, [base, _tar([("a", b"a")])], tag="a")
    made = make_oci(second, [base, _tar([("b", b"b")])], tag="b")
    with Roots(tmp_path, "s").open() as store:
        one = import_image(store, f"oci:{first}", ["a"])
        two = import_image(store, f"oci:{second}", ["b"])
        assert one.layers[0] == two.layers[0] == made["diff_ids"][0].partition(":")[2]
        assert two.new_layers == (two.layers[1],)
        assert len(store.layers()) == 3
        assert len(store.layers_by_uncompressed_digest(made["diff_ids"][0])) == 1
        assert len(store.images()) == 2


def _corrupt_layer(root: Path, made: dict[str, Any]) -> None:
    path = root / "blobs" / "sha256" / made["layers"][-1]["digest"].partition(":")[2]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _missing_layer(root: Path, made: dict[str, Any]) -> None:
    (root / "blobs" / "sha256" / made["layers"][-1]["digest"].partition(":")[2]).unlink()


@pytest.mark.parametrize(("damage", "message"), [
    (_corrupt_layer, "does not match its digest"),
    (_missing_layer, "is missing from"),
])
def test_bad_blob_is_refused_and_store_unchanged(tmp_path: Path, damage: Any,
                                                 message: str) -> None:
    oci = tmp_path / "oci"
    made = make_oci(oci, [base_layer(), _tar([("etc", None), ("etc/x", b"x" * 100000)])])
    damage(oci, made)
    roots = Roots(tmp_path, "s")
    roots.cli("layers")  # the store exists before
    before = roots.records()
    proc = roots.cli("import-image", f"oci:{oci}", "busybox", check=False)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert roots.records() == before
    assert not [p for p in (roots.graph / "vfs" / "dir").iterdir()]


def test_wrong_diff_id_is_refused_and_the_layer_removed(tmp_path: Path) -> None:
    oci = tmp_path / "oci"
    make_oci(oci, [base_layer()])
    # A config that lies about the layer's content (the blob digests all match).
    index = json.loads((oci / "index.json").read_text())
    mpath = oci / "blobs" / "sha256" / index["manifests"][0]["digest"][7:]
    manifest = json.loads(mpath.read_bytes())
    cfg = json.loads((oci / "blobs" / "sha256" / manifest["config"]["digest"][7:]).read_bytes())
    cfg["rootfs"]["diff_ids"] = ["sha256:" + "0" * 64]
    raw = json.dumps(cfg).encode()
    manifest["config"] = {**manifest["config"], "digest": _put(oci, raw), "size": len(raw)}
    rawm = json.dumps(manifest).encode()
    index["manifests"][0].update(digest=_put(oci, rawm), size=len(rawm))
    (oci / "index.json").write_text(json.dumps(index))
    roots = Roots(tmp_path, "s")
    proc = roots.cli("import-image", f"oci:{oci}", "busybox", check=False)
    assert proc.returncode == 1 and "the config says" in proc.stderr
    assert roots.records() == ([], [])


def test_index_without_our_platform_is_refused(tmp_path: Path) -> None:
    oci = tmp_path / "oci"
    make_oci(oci, [base_layer()], platform_index=True, arch="s390x")
    roots = Roots(tmp_path, "s")
    proc = roots.cli("import-image", f"oci:{oci}", "busybox", check=False)
    assert proc.returncode == 1
    assert "no image for platform linux/" in proc.stderr and "linux/s390x" in proc.stderr
    assert roots.records() == ([], [])
    # --platform picks it.
    roots.cli("import-image", "--platform", "linux/s390x", f"oci:{oci}", "busybox")


def test_export_is_bit_exact_with_the_import(tmp_path: Path) -> None:
    oci = tmp_path / "oci"
    plain = [base_layer(), _tar([("d", None), ("d/f", os.urandom(70000))])]
    make_oci(oci, plain)
    with Roots(tmp_path, "s").open() as store:
        import_image(store, f"oci:{oci}", ["bb"])
        out = tmp_path / "out.tar"
        result = export_image(store, "bb", f"oci-archive:{out}", compression="none")
    assert result.layer_digests == tuple("sha256:" + hashlib.sha256(p).hexdigest()
                                         for p in plain)
    with tarfile.open(out) as tar:
        for digest, data in zip(result.layer_digests, plain, strict=True):
            member = tar.extractfile(f"blobs/sha256/{digest[7:]}")
            assert member is not None and member.read() == data


def test_truncated_archive_is_refused_and_store_unchanged(tmp_path: Path) -> None:
    oci = tmp_path / "oci"
    make_oci(oci, [base_layer(), _tar([("d", None), ("d/f", os.urandom(200000))])])
    roots = Roots(tmp_path, "s")
    whole = tmp_path / "whole.tar"
    with roots.open() as store:
        import_image(store, f"oci:{oci}", ["bb"])
        export_image(store, "bb", f"oci-archive:{whole}", compression="none")
    cut = tmp_path / "cut.tar"
    data = whole.read_bytes()
    cut.write_bytes(data[:len(data) - 150000])
    other = Roots(tmp_path, "other")
    other.cli("layers")
    proc = other.cli("import-image", f"oci-archive:{cut}", "bb", check=False)
    assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert other.records() == ([], [])
