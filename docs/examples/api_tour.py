"""A tour of the cs_core library API, written from its documentation.

Run it as ``python api_tour.py DIR``: it makes a vfs store under DIR, puts a layer into it,
makes an image and a container, mounts the container, reads its diff, and shows the errors
a script catches. ``mypy --strict`` accepts it (tests/test_api.py checks both).
"""

from __future__ import annotations

import io
import sys
import tarfile
from pathlib import Path

import cs_core
from cs_core import LayerOptions, open_store
from cs_core.errors import AlreadyExists, InUse, LayerUnknown, NotFound, StorageError


def hello_tar() -> bytes:
    """A one-file layer, as a tar stream (it may also be gzip or zstd compressed)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = b"hello from a layer\n"
        info = tarfile.TarInfo("etc/hello.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def main(root: Path) -> int:
    print(f"cs_core {cs_core.__version__}")
    seen: list[int] = []  # progress: running totals of the bytes read from the stream
    with open_store(graph_root=str(root / "graph"), run_root=str(root / "run"),
                    driver_name="vfs") as store:
        layer = store.put_layer(names=["hello-layer"], diff=io.BytesIO(hello_tar()),
                                options=LayerOptions(progress=seen.append))
        print(f"layer {layer.id[:12]}: {layer.uncompressed_size} bytes, read {seen[-1]}")
        image = store.create_image(names=["example.com/hello:1"], layer=layer.id)
        container = store.create_container(names=["hello-ctr"], image=image.id)

        with store.mounting(container.id) as path:  # unmounted when the block ends
            print((Path(path) / "etc" / "hello.txt").read_text(), end="")
            (Path(path) / "etc" / "new.txt").write_text("written in the container\n")

        size = 0
        for chunk in store.iter_diff(None, container.layer):  # the container's changes
            size += len(chunk)
        with store.diff_reader(None, layer.id) as f, tarfile.open(fileobj=f, mode="r|*") as tar:
            names = [member.name for member in tar]
        print(f"container diff: {size} bytes; layer diff holds {names}")

        try:
            store.layer("no-such-layer")
        except LayerUnknown as exc:  # also a NotFound, a StorageError and a KeyError
            print(f"lookup: {exc}")
        try:
            store.create_layer(names=["hello-layer"])
        except AlreadyExists as exc:  # also a FileExistsError
            print(f"create: {exc} (errno {exc.errno})")
        try:
            store.delete_image(image.id)
        except InUse as exc:
            print(f"delete: {exc}")
        store.delete_container(container.id)
        store.delete_image(image.id)
        try:
            store.image(image.id)
        except NotFound:
            print("image deleted")
    try:
        store.layers()
    except StorageError as exc:
        print(f"after the with block: {exc}")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
