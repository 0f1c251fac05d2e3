"""storage.conf's parse cache: used only for the file version it was made from, and only
when it is ours and well formed; anything else is reparsed silently and re-cached."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from cs_core.config import _file_key, load_config_file
from cs_core.testing import require_privileged

CONF = """
[storage]
driver = "vfs"
runroot = "/run/aaa"
graphroot = "/var/lib/aaa"

[storage.options]
pull_options = {use_hard_links = "false"}
"""


@pytest.fixture
def conf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for var in ("STORAGE_DRIVER", "STORAGE_OPTS", "CONTAINERS_STORAGE_CONF"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    path = tmp_path / "storage.conf"
    path.write_text(CONF)
    return path


def _cache(conf: Path) -> Path:
    return conf.parent / "cache" / "cs_core" / "storage-conf.json"


def _cached_graph_root(conf: Path) -> str:
    return str(json.loads(_cache(conf).read_bytes())["data"]["storage"]["graphroot"])


def _plant(conf: Path, graph_root: str) -> Path:
    """A well-formed cache entry for ``conf``'s current version whose tables lie."""
    cache = _cache(conf)
    cache.parent.mkdir(parents=True, exist_ok=True)
    data = {"storage": {"driver": "vfs", "graphroot": graph_root}}
    cache.write_text(json.dumps({"key": _file_key(str(conf), conf.stat()), "data": data}))
    cache.chmod(0o600)
    return cache


def test_the_parse_is_cached_and_the_cache_used(conf: Path) -> None:
    assert load_config_file(str(conf)).graph_root == "/var/lib/aaa"
    assert _cached_graph_root(conf) == "/var/lib/aaa"
    _plant(conf, "/var/lib/from-cache")  # proves a matching entry is what a run reads
    assert load_config_file(str(conf)).graph_root == "/var/lib/from-cache"


def test_an_edit_is_seen_even_with_the_old_size_and_mtime(conf: Path) -> None:
    assert load_config_file(str(conf)).graph_root == "/var/lib/aaa"
    before = conf.stat()
    conf.write_text(CONF.replace("aaa", "bbb"))  # same size
    os.utime(conf, ns=(before.st_atime_ns, before.st_mtime_ns))  # as touch -r / rsync -t do
    opts = load_config_file(str(conf))
    assert (opts.graph_root, opts.run_root) == ("/var/lib/bbb", "/run/bbb")
    assert _cached_graph_root(conf) == "/var/lib/bbb"


def test_a_replaced_file_is_seen(conf: Path) -> None:
    load_config_file(str(conf))
    new = conf.with_name("new.conf")
    new.write_text(CONF.replace('driver = "vfs"', 'driver = ""'))
    new.rename(conf)
    assert load_config_file(str(conf)).driver_name == ""


CORRUPT = {
    "garbage": b"\x00\x01not json",
    "bad utf-8": b"\xff\xfe{",
    "a list": b"[]",
    "no key": b'{"data": {}}',
    "deep nesting": b"[" * 200_000,
    "empty": b"",
}


@pytest.mark.parametrize("content", CORRUPT.values(), ids=CORRUPT.keys())
def test_a_corrupt_cache_is_reparsed_silently(conf: Path, content: bytes) -> None:
    cache = _cache(conf)
    cache.parent.mkdir(parents=True)
    cache.write_bytes(content)
    cache.chmod(0o600)
    assert load_config_file(str(conf)).graph_root == "/var/lib/aaa"
    assert _cached_graph_root(conf) == "/var/lib/aaa"  # re-cached: the next run is fast again


def test_a_right_keyed_entry_with_data_not_a_table_is_reparsed(conf: Path) -> None:
    cache = _plant(conf, "x")
    entry = json.loads(cache.read_text())
    cache.write_text(json.dumps({"key": entry["key"], "data": ["storage"]}))
    assert load_config_file(str(conf)).graph_root == "/var/lib/aaa"


def test_a_writable_by_others_cache_is_not_trusted(conf: Path) -> None:
    _plant(conf, "/var/lib/evil").chmod(0o666)
    assert load_config_file(str(conf)).graph_root == "/var/lib/aaa"


def test_a_symlinked_cache_is_not_followed(conf: Path) -> None:
    real = _plant(conf, "/var/lib/evil")
    elsewhere = conf.parent / "elsewhere.json"
    real.rename(elsewhere)
    real.symlink_to(elsewhere)
    assert load_config_file(str(conf)).graph_root == "/var/lib/aaa"
    assert not real.is_symlink()  # replaced by our own entry, the target left alone
    assert "evil" in elsewhere.read_text()


def test_another_users_cache_is_not_trusted(conf: Path) -> None:
    require_privileged("making a file another user owns needs root")
    os.chown(_plant(conf, "/var/lib/evil"), 65534, 65534)
    assert load_config_file(str(conf)).graph_root == "/var/lib/aaa"


def test_an_unwritable_cache_dir_costs_only_the_parse(conf: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))  # a file: no directory can be made in it
    assert load_config_file(str(conf)).graph_root == "/var/lib/aaa"
    assert load_config_file(str(conf)).graph_root == "/var/lib/aaa"
