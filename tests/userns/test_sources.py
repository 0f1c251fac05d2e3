"""Where auto user namespaces get their numbers: subordinate-ID files and an image's
/etc/passwd and /etc/group."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from cs_core.userns.auto import available_ids, size_from_user_files
from cs_core.userns.idset import IDSet

from .conftest import SubIDs

PASSWD = """root:x:0:0:root:/root:/bin/sh
daemon:x:1:1::/:/bin/false
app:x:2000:2500::/home/app:/bin/sh
nobody:x:65534:65534:nobody:/:/bin/false
other-nobody:x:65534:7:::
"""
GROUP = """root:x:0:
nogroup:x:65534:
staff:x:3000:app
"""


def _root(tmp_path: Path, passwd: str | None = PASSWD, group: str | None = GROUP) -> Path:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    if passwd is not None:
        (root / "etc" / "passwd").write_text(passwd)
    if group is not None:
        (root / "etc" / "group").write_text(group)
    return root


def test_highest_ids_in_passwd_and_group_plus_one_without_nobody(tmp_path: Path) -> None:
    root = _root(tmp_path)
    assert size_from_user_files(str(root)) == 3001  # staff's GID
    (root / "etc" / "group").unlink()
    assert size_from_user_files(str(root)) == 2501  # app's primary GID
    (root / "etc" / "passwd").unlink()
    assert size_from_user_files(str(root)) == 0


def test_malformed_lines_do_not_stop_the_scan(tmp_path: Path) -> None:
    root = _root(tmp_path, "garbage\n\n   \nx:y:not-a-number:12\nshort:x\n", "g:x\n")
    assert size_from_user_files(str(root)) == 13


def test_override_files_are_host_paths(tmp_path: Path) -> None:
    root = _root(tmp_path)
    volume = tmp_path / "volume-passwd"
    volume.write_text("big:x:40000:1:::\n")
    assert size_from_user_files(str(root), passwd_file=str(volume)) == 40001
    assert size_from_user_files(str(root), passwd_file=str(volume),
                                group_file=str(tmp_path / "missing")) == 40001


def test_symlinks_resolve_inside_the_root(tmp_path: Path) -> None:
    host_file = tmp_path / "host-passwd"
    host_file.write_text("host:x:99999:99999:::\n")
    root = _root(tmp_path, passwd=None, group=None)
    # Absolute and climbing links both stay in the root, where there is nothing.
    os.symlink(str(host_file), root / "etc" / "passwd")
    os.symlink("../../../../../../" + str(host_file), root / "etc" / "group")
    assert size_from_user_files(str(root)) == 0
    # A link within the image is followed.
    (root / "usr").mkdir()
    (root / "usr" / "passwd").write_text("in-image:x:1234:1:::\n")
    (root / "etc" / "passwd").unlink()
    os.symlink("/usr/passwd", root / "etc" / "passwd")
    assert size_from_user_files(str(root)) == 1235


def test_a_fifo_is_not_read(tmp_path: Path) -> None:
    root = _root(tmp_path, passwd=None)
    os.mkfifo(root / "etc" / "passwd")  # reading it would block forever
    assert size_from_user_files(str(root)) == 3001


def test_ranges_of_the_configured_user(subids: SubIDs) -> None:
    subids("someone:1:2\ncs-auto:200000:1000\nother:500000:10\ncs-auto:100000:50\n")
    uids, gids = available_ids("cs-auto", rootless=False)
    assert uids == gids == IDSet([(100000, 100050), (200000, 201000)])


def test_default_user_is_containers(subids: SubIDs) -> None:
    subids("containers:300000:65536\n")
    uids, _ = available_ids("", rootless=False)
    assert uids == IDSet([(300000, 365536)])


def test_rootless_ranges_are_renumbered_from_one(subids: SubIDs,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    subids("containers:300000:65536\nme:100000:1000\nme:200000:24\n")
    monkeypatch.setenv("USER", "me")
    # The configured user does not matter rootless: only the caller's IDs are usable, and
    # inside its namespace they are 1..N.
    uids, gids = available_ids("containers", rootless=True)
    assert uids == gids == IDSet([(1, 1025)])


def test_a_user_without_ranges_has_no_ids(subids: SubIDs,
                                          caplog: pytest.LogCaptureFixture) -> None:
    subids("containers:300000:65536\n")
    with caplog.at_level(logging.ERROR):
        uids, gids = available_ids("nobody-here", rootless=False)
    assert uids == gids == IDSet()
    assert 'Cannot find mappings for user "nobody-here": no subuid ranges found for user ' \
        '"nobody-here"' in caplog.text

