"""The on-disk layout is Go's, byte for byte, and lost links are rebuilt."""

from __future__ import annotations

import os
import re
import stat

from cs_overlay.driver import OverlayDriver
from cs_overlay.testing import layer_id

from cs_core.drivers.base import CreateOpts

LINK_RE = re.compile(r"^[A-Z2-7]{26}$")


def mode(p: object) -> int:
    return stat.S_IMODE(os.lstat(str(p)).st_mode)


def test_base_and_child_layout(driver: OverlayDriver) -> None:
    home = driver.home
    base, child, grandchild = layer_id(1), layer_id(2), layer_id(3)
    driver.create(base, None, CreateOpts())
    driver.create(child, base, CreateOpts())
    driver.create_read_write(grandchild, child, CreateOpts())

    assert mode(home / "l") == 0o755
    for lid in (base, child, grandchild):
        d = home / lid
        assert mode(d) == 0o700
        assert mode(d / "diff") == 0o555
        assert mode(d / "work") == 0o700 and mode(d / "merged") == 0o700
        link = (d / "link").read_bytes().decode()
        assert LINK_RE.match(link), link  # no newline
        assert mode(d / "link") == 0o644
        assert os.readlink(home / "l" / link) == f"../{lid}/diff"
    assert (home / base / "empty").is_dir() and not (home / base / "lower").exists()
    assert not (home / child / "empty").exists()
    base_link = (home / base / "link").read_text()
    child_link = (home / child / "link").read_text()
    assert (home / child / "lower").read_bytes() == f"l/{base_link}".encode()
    assert (home / grandchild / "lower").read_text() == f"l/{child_link}:l/{base_link}"
    assert sorted(os.listdir(home / "l")) == sorted(
        (home / x / "link").read_text() for x in (base, child, grandchild))
    assert driver.exists(child) and sorted(driver.list_layers()) == [base, child, grandchild]
    md = driver.metadata(grandchild)
    assert md["UpperDir"] == str(home / grandchild / "diff")
    assert md["LowerDir"] == f"{home / child / 'diff'}:{home / base / 'diff'}"


def test_child_inherits_parent_diff_mode(driver: OverlayDriver) -> None:
    driver.create(layer_id(1), None, CreateOpts())
    os.chmod(driver.home / layer_id(1) / "diff", 0o751)
    driver.create(layer_id(2), layer_id(1), CreateOpts())
    assert mode(driver.home / layer_id(2) / "diff") == 0o751


def test_remove_deletes_dir_and_link(driver: OverlayDriver) -> None:
    driver.create(layer_id(1), None, CreateOpts())
    (driver.home / layer_id(1) / "diff" / "sub").mkdir()
    os.chmod(driver.home / layer_id(1) / "diff" / "sub", 0o555)
    driver.remove(layer_id(1))
    assert not (driver.home / layer_id(1)).exists()
    assert os.listdir(driver.home / "l") == []
    driver.remove(layer_id(1))  # missing is not an error


def test_lost_links_are_recreated(driver: OverlayDriver) -> None:
    from cs_core.drivers.base import MountOpts

    driver.create(layer_id(1), None, CreateOpts())
    (driver.home / layer_id(1) / "diff" / "f").write_text("x")
    driver.create(layer_id(2), layer_id(1), CreateOpts())
    for link in os.listdir(driver.home / "l"):
        os.unlink(driver.home / "l" / link)
    merged = driver.get(layer_id(2), MountOpts())
    try:
        assert (merged / "f").read_text() == "x"
    finally:
        driver.put(layer_id(2))
    assert len(os.listdir(driver.home / "l")) == 2


def test_lost_link_file_is_recreated_from_l(driver: OverlayDriver) -> None:
    driver.create(layer_id(1), None, CreateOpts())
    link = (driver.home / layer_id(1) / "link").read_text()
    os.unlink(driver.home / layer_id(1) / "link")
    driver.create(layer_id(2), layer_id(1), CreateOpts())
    assert (driver.home / layer_id(1) / "link").read_text() == link
    assert (driver.home / layer_id(2) / "lower").read_text() == f"l/{link}"


def test_run_home_feature_cache(driver: OverlayDriver) -> None:
    names = set(os.listdir(driver.run_home))
    assert "overlay-true" in names and "metacopy()-false" in names
    driver.status()
    assert "native-diff()-true" in set(os.listdir(driver.run_home))
    assert (driver.home / ".has-mount-program").read_text() == "false"


def test_recreate_symlinks_repairs_mismatches(driver: OverlayDriver) -> None:
    driver.create(layer_id(1), None, CreateOpts())
    link = (driver.home / layer_id(1) / "link").read_text()
    (driver.home / layer_id(1) / "link").write_text("WRONGWRONGWRONGWRONGWRONG2")
    os.symlink("../gone-layer/diff", driver.home / "l" / "DANGLINGDANGLINGDANGLING22")
    os.symlink("/etc", driver.home / "l" / "WEIRDWEIRDWEIRDWEIRDWEIRD2")
    driver.layout.recreate_symlinks()
    # Go's rule: the l/ entry pointing at a layer names it; weird and dangling entries go
    names = set(os.listdir(driver.home / "l"))
    assert link in names and "WEIRDWEIRDWEIRDWEIRDWEIRD2" not in names
    assert "DANGLINGDANGLINGDANGLING22" not in names
    assert os.readlink(driver.home / "l" / (driver.home / layer_id(1) / "link").read_text()) == \
        f"../{layer_id(1)}/diff"
