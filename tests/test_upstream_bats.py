"""Behaviours upstream's HEAD bats suite (tests/*.bats) expects of the store, on a real vfs
store. Go 1.43 fails these bats steps; we follow the suite (NOTES.md)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest

from cs_core import errors
from cs_core.store import Store


def _manifest_digest(s: Store, image: str, manifest: bytes) -> str:
    s.set_image_big_data(image, "manifest", manifest)
    return "sha256:" + hashlib.sha256(manifest).hexdigest()


def test_image_found_by_a_digest_only_it_carries(vfs_store: Store) -> None:
    # image-by-digest.bats: `image sha256:<manifest digest>` prints that image.
    s = vfs_store
    first = s.create_image()
    second = s.create_image()
    digest = _manifest_digest(s, first.id, b'{"first": 1}')
    assert s.image(digest).id == first.id
    # A digest two images carry names neither, as an ambiguous ID prefix does.
    assert _manifest_digest(s, second.id, b'{"first": 1}') == digest
    with pytest.raises(errors.ImageUnknown):
        s.image(digest)
    s.delete_image(second.id)
    assert s.image(digest).id == first.id
    with pytest.raises(errors.ImageUnknown):
        s.image("sha256:" + "0" * 64)


def test_mounted_counts_an_image_mounted_read_only(vfs_store: Store) -> None:
    # image-mount.bats: `mount --ro IMAGE`, then `mounted IMAGE` reports it mounted.
    s = vfs_store
    layer = s.create_layer()
    image = s.create_image(names=["wonderful-image"], layer=layer.id)
    assert s.mounted(image.id) == 0
    s.mount_image(image.id)
    assert s.mounted(image.id) == 1
    assert s.mounted("wonderful-image") == 1
    assert s.mounted(layer.id) == 1
    s.unmount_image(image.id)
    assert s.mounted(image.id) == 0
    # Mounted by name or ID without --ro: counted and unmounted the same way.
    s.mount("wonderful-image")
    s.mount(image.id)
    assert s.mounted(image.id) == 2
    assert s.unmount(image.id) is True
    assert s.unmount("wonderful-image") is False
    assert s.mounted(image.id) == 0
    with pytest.raises(errors.LayerUnknown):
        s.mounted("no-such-thing")


def test_create_image_takes_a_name_from_another_image(make_store: Callable[[], Store]) -> None:
    # image-mount.bats: a second `create-image --name wonderful-image` succeeds, and the
    # name now stands for the new image; the old one keeps its other names.
    s = make_store()
    layer = s.create_layer()
    old = s.create_image(names=["wonderful-image", "other"], layer=layer.id)
    new = s.create_image(names=["wonderful-image"], layer=layer.id)
    assert s.image("wonderful-image").id == new.id
    assert s.names(old.id) == ["other"]
    assert s.names(new.id) == ["wonderful-image"]
    reopened = make_store()
    assert reopened.image("wonderful-image").id == new.id
    assert reopened.names(old.id) == ["other"]
