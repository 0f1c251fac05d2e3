"""podman runs an image that cs_core stored: layers by applydiff, an OCI manifest and config."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest
from cs_overlay.testing import unmount_all_under

from cs_core.store import ImageOptions, open_store
from cs_core.testing import require_privileged, requires_command

pytestmark = pytest.mark.interop


def _tar(entries: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for info, data in entries:
            if data is not None:
                info.size = len(data)
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _info(name: str, kind: bytes = tarfile.REGTYPE, mode: int = 0o644, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.linkname, info.mtime = kind, mode, link, 1_700_000_000
    return info


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def store_busybox_image(root: Path, run: Path) -> str:
    busybox = Path(shutil.which("busybox", path="/bin:/usr/bin") or "/bin/busybox").read_bytes()
    base = _tar([(_info(d, tarfile.DIRTYPE, 0o755), None) for d in ("bin", "etc", "tmp")] + [
        (_info("bin/busybox", mode=0o755), busybox),
        (_info("bin/sh", tarfile.SYMTYPE, 0o777, "busybox"), None),
        (_info("etc/gone"), b"deleted by the next layer\n"),
    ])
    top = _tar([(_info("etc/greeting"), b"hello from cs_core\n"), (_info("etc/.wh.gone"), b"")])
    store = open_store(graph_root=str(root), run_root=str(run), driver_name="overlay")
    try:
        l1 = store.put_layer(diff=io.BytesIO(base))
        l2 = store.put_layer(parent=l1.id, diff=io.BytesIO(top))
        config = json.dumps({
            "architecture": "amd64", "os": "linux",
            "config": {"Cmd": ["/bin/sh", "-c", "cat /etc/greeting; ls /etc"], "Env": ["PATH=/bin"]},
            "rootfs": {"type": "layers", "diff_ids": [_digest(base), _digest(top)]},
        }).encode()
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": _digest(config), "size": len(config)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": _digest(t),
                        "size": len(t)} for t in (base, top)],
        }).encode()
        image = store.create_image(id=_digest(config)[7:], names=["localhost/cs-busybox:latest"],
                                   layer=l2.id, options=ImageOptions(digest=_digest(manifest)))
        # the keys containers/image's storage transport writes and podman reads
        store.set_image_big_data(image.id, _digest(config), config)
        store.set_image_big_data(image.id, "manifest-" + _digest(manifest), manifest)
        store.set_image_big_data(image.id, "manifest", manifest)
        return image.id
    finally:
        store.shutdown(force=True)


# nproc: this VM lacks CAP_SYS_RESOURCE, so podman's default (raise to max) fails
LIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]


class PodmanStore(NamedTuple):
    root: Path
    run: Path
    podman: list[str]  # the podman command line for this store


@pytest.fixture
def podman_store(tmp_path: Path) -> Iterator[PodmanStore]:
    require_privileged()
    requires_command("podman", "runc")
    # podman refuses run roots longer than 50 characters
    short = Path(tempfile.mkdtemp(prefix="cs-podman-", dir="/tmp"))
    root, run = tmp_path / "root", short / "run"
    try:
        yield PodmanStore(root, run, ["podman", "--root", str(root), "--runroot", str(run),
                                      "--storage-driver", "overlay"])
    finally:
        unmount_all_under(tmp_path)
        unmount_all_under(short)
        shutil.rmtree(short, ignore_errors=True)


def test_podman_runs_image_stored_by_cs_core(podman_store: PodmanStore) -> None:
    root, run, podman = podman_store
    image_id = store_busybox_image(root, run)
    listed = subprocess.run([*podman, "images", "--format", "{{.ID}} {{.Repository}}:{{.Tag}}"],
                            capture_output=True, text=True, timeout=120, check=True).stdout
    assert f"{image_id[:12]} localhost/cs-busybox:latest" in listed
    proc = subprocess.run([*podman, "run", "--rm", "--runtime", "runc", "--network", "none", *LIMITS,
                           "localhost/cs-busybox:latest"],
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == "hello from cs_core"
    assert "gone" not in proc.stdout.split() and "greeting" in proc.stdout.split()
    # a container podman creates is ours to list and mount, and podman sees what we write
    ctr = subprocess.run([*podman, "create", "--runtime", "runc", "--network", "none", "--name", "kept",
                          *LIMITS, "localhost/cs-busybox:latest"],
                         capture_output=True, text=True, timeout=120, check=True).stdout.strip()
    store = open_store(graph_root=str(root), run_root=str(run), driver_name="overlay")
    try:
        assert [i.id for i in store.images()] == [image_id]
        assert [c.id for c in store.containers()] == [ctr]
        merged = Path(store.mount(ctr))
        try:
            assert (merged / "etc" / "greeting").read_text() == "hello from cs_core\n"
            (merged / "etc" / "greeting").write_text("written by cs_core\n")
        finally:
            store.unmount(ctr)
    finally:
        store.shutdown(force=True)
    proc = subprocess.run([*podman, "start", "--attach", "kept"], capture_output=True, text=True,
                          timeout=180)
    assert proc.stdout.splitlines()[:1] == ["written by cs_core"], proc.stderr
    subprocess.run([*podman, "rm", "kept"], capture_output=True, timeout=120, check=True)
    store = open_store(graph_root=str(root), run_root=str(run), driver_name="overlay")
    try:
        assert store.containers() == [] and len(store.layers()) == 2
    finally:
        store.shutdown(force=True)


def test_podman_user_namespace_container_and_ours_agree_on_owners(podman_store: PodmanStore) -> None:
    # podman (its own containers/storage) ID-maps the lowers of a --uidmap container, as we do:
    # no mapped copy is made, and we and the container see the same files the same way.
    root, run, podman = podman_store
    store_busybox_image(root, run)
    userns = ["--uidmap", "0:100000:65536", "--gidmap", "0:100000:65536"]
    ctr = subprocess.run([*podman, "create", "--runtime", "runc", "--network", "none", *userns,
                          *LIMITS, "localhost/cs-busybox:latest", "/bin/sh", "-c",
                          "ls -ln /etc/greeting /etc/ours"],
                         capture_output=True, text=True, timeout=120, check=True).stdout.strip()
    store = open_store(graph_root=str(root), run_root=str(run), driver_name="overlay")
    try:
        assert [i.mapped_top_layers for i in store.images()] == [[]]
        assert store.layer(store.container(ctr).layer).uid_map == []
        merged = Path(store.mount(ctr))
        try:
            st = (merged / "etc" / "greeting").stat()
            assert (st.st_uid, st.st_gid) == (100000, 100000)
            (merged / "etc" / "ours").write_text("x")
            os.chown(merged / "etc" / "ours", 100007, 100008)
        finally:
            store.unmount(ctr)
    finally:
        store.shutdown(force=True)
    proc = subprocess.run([*podman, "start", "--attach", ctr], capture_output=True, text=True,
                          timeout=180)
    owners = [line.split()[2:4] for line in proc.stdout.splitlines()]
    assert owners == [["0", "0"], ["7", "8"]], proc.stderr
    # No `podman rm` here: right after `start --attach`, podman's own asynchronous cleanup of a
    # user-namespaced container's shm mount races with it (podman fails with "unlinkat
    # .../userdata/shm: device or resource busy" in about half the runs here). The fixture
    # detaches whatever podman left mounted.
