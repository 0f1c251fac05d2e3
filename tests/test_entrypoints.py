"""Our entry-point scan finds what importlib.metadata finds, in the same order."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

from cs_core.drivers.entrypoints import ZIP_INDEX, entry_points
from cs_core.drivers.plugins import ENTRY_POINT_GROUP


def _dist(root: Path, dirname: str, name: str, version: str, entry_points_txt: str,
          metadata_file: str = "METADATA") -> None:
    d = root / dirname
    d.mkdir(parents=True)
    (d / metadata_file).write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
                                   "Summary: x\n\nName: not-a-header\n")
    (d / "entry_points.txt").write_text(entry_points_txt)


def _theirs(paths: list[str], group: str) -> list[tuple[str, str, str, str]]:
    found, seen = [], set()
    for dist in metadata.distributions(path=paths):
        key = dist._normalized_name  # type: ignore[attr-defined]
        if key in seen:
            continue
        seen.add(key)
        found += [(ep.name, ep.value, dist.name, dist.version)
                  for ep in dist.entry_points if ep.group == group]
    return found


def _ours(paths: list[str], group: str) -> list[tuple[str, str, str, str]]:
    return [(ep.name, ep.value, ep.dist.name, ep.dist.version)
            for ep in entry_points(group, paths)]


def test_same_entry_points_as_importlib_metadata(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    _dist(first, "cs_alpha-1.0.dist-info", "cs-alpha", "1.0",
          "# a comment\n[console_scripts]\nalpha = cs_alpha:main\n\n"
          "[cs_core]\n  alpha = cs_alpha.hooks\n# another comment\nbeta=cs_alpha.more:obj.attr [extra]\n")
    _dist(first, "Old.Style.egg-info", "Old.Style", "0.3", "[cs_core]\nold = old_style\n",
          metadata_file="PKG-INFO")
    _dist(first, "nothing-2.0.dist-info", "nothing", "2.0", "[other]\nx = y\n")
    # The same distribution later on the path is shadowed, as importlib resolves modules.
    _dist(second, "cs.alpha-9.9.dist-info", "cs.alpha", "9.9", "[cs_core]\nshadowed = nope\n")
    _dist(second, "cs_gamma-0.1.dist-info", "cs-gamma", "0.1", "[cs_core]\ngamma = cs_gamma\n")
    paths = [str(first), str(tmp_path / "missing"), str(second)]
    ours = _ours(paths, ENTRY_POINT_GROUP)
    assert sorted(ours) == sorted(_theirs(paths, ENTRY_POINT_GROUP))
    assert {name for name, *_ in ours} == {"alpha", "beta", "old", "gamma"}


def test_same_entry_points_as_importlib_metadata_on_this_sys_path() -> None:
    assert _ours(sys.path, ENTRY_POINT_GROUP) == _theirs(sys.path, ENTRY_POINT_GROUP)


def test_load_imports_module_and_attribute_path(tmp_path: Path) -> None:
    (tmp_path / "cs_ep_probe.py").write_text("class Holder:\n    value = 42\n")
    _dist(tmp_path, "cs_ep_probe-1.dist-info", "cs-ep-probe", "1",
          "[cs_core]\nprobe = cs_ep_probe:Holder.value\nmod = cs_ep_probe\n")
    sys.path.insert(0, str(tmp_path))
    try:
        loaded = {ep.name: ep.load() for ep in entry_points(ENTRY_POINT_GROUP, [str(tmp_path)])}
        assert loaded["probe"] == 42
        assert loaded["mod"] is sys.modules["cs_ep_probe"]
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("cs_ep_probe", None)


def _zip_of(tree: Path, dest: Path, index: bool) -> str:
    if index:
        (tree / ZIP_INDEX).write_text("".join(f"{p.name}\n" for p in sorted(tree.iterdir())
                                              if p.name.endswith(".dist-info")))
    with zipfile.ZipFile(dest, "w") as archive:
        for path in sorted(tree.rglob("*")):
            archive.write(path, str(path.relative_to(tree)))
    return str(dest)


@pytest.mark.parametrize("index", [True, False], ids=["indexed zip", "zip without index"])
def test_a_zipped_path_entry_gives_what_importlib_metadata_gives(tmp_path: Path,
                                                                   index: bool) -> None:
    tree = tmp_path / "tree"
    _dist(tree, "cs_alpha-1.0.dist-info", "cs-alpha", "1.0", "[cs_core]\nalpha = cs_alpha.hooks\n")
    _dist(tree, "cs_beta-2.0.dist-info", "cs-beta", "2.0", "[cs_core]\nbeta = cs_beta:obj\n")
    paths = [_zip_of(tree, tmp_path / "app.zip", index)]
    ours = _ours(paths, ENTRY_POINT_GROUP)
    assert ours == _theirs(paths, ENTRY_POINT_GROUP)
    assert [name for name, *_ in ours] == ["alpha", "beta"]


def test_an_indexed_zip_is_read_without_importlib_metadata(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    _dist(tree, "cs_alpha-1.0.dist-info", "cs-alpha", "1.0", "[cs_core]\nalpha = cs_alpha.hooks\n")
    app = _zip_of(tree, tmp_path / "app.zip", index=True)
    probe = ("import sys; from cs_core.drivers.entrypoints import entry_points; "
             f"eps = entry_points('cs_core', [{app!r}]); "
             "print([(e.name, e.dist.name, e.dist.version) for e in eps], "
             "'importlib.metadata' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True).stdout
    assert out == "[('alpha', 'cs-alpha', '1.0')] False\n"


# -- the scan cache (sys.path scans only) --------------------------------------------------------


@pytest.fixture
def scan_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A sys.path of one directory holding one plugin distribution, and a cache of our own."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    site = tmp_path / "site"
    _dist(site, "cs_alpha-1.0.dist-info", "cs-alpha", "1.0", "[cs_core]\nalpha = cs_alpha.hooks\n")
    monkeypatch.setattr(sys, "path", [str(site)])
    return site


def _cache_file(site: Path) -> Path:
    """The cache file of the current sys.path (one per path)."""
    from cs_core.drivers.entrypoints import _cache_file as cache_of

    found = cache_of(sys.path)
    assert found is not None and found.startswith(str(site.parent / "cache" / "cs_core"))
    return Path(found)


def _names() -> list[tuple[str, str, str, str]]:
    return [(ep.name, ep.value, ep.dist.name, ep.dist.version)  # type: ignore[attr-defined]
            for ep in entry_points(ENTRY_POINT_GROUP)]


def _lie(site: Path) -> None:
    """Make the cached entry, still keyed to the current files, name another module."""
    cache = _cache_file(site)
    entry = json.loads(cache.read_bytes())
    entry["entry_points"][0][1] = "planted.module"
    cache.write_text(json.dumps(entry))
    cache.chmod(0o600)


def test_the_scan_is_cached_and_the_cache_used(scan_path: Path) -> None:
    assert _names() == [("alpha", "cs_alpha.hooks", "cs-alpha", "1.0")]
    _lie(scan_path)  # proves a matching entry is what the next scan returns
    assert _names() == [("alpha", "planted.module", "cs-alpha", "1.0")]


def test_an_installed_distribution_is_seen_at_once(scan_path: Path) -> None:
    _names()
    _lie(scan_path)
    _dist(scan_path, "cs_beta-2.0.dist-info", "cs-beta", "2.0", "[cs_core]\nbeta = cs_beta\n")
    assert sorted(_names()) == [("alpha", "cs_alpha.hooks", "cs-alpha", "1.0"),
                                ("beta", "cs_beta", "cs-beta", "2.0")]
    assert _names() == _theirs(sys.path, ENTRY_POINT_GROUP)


def test_an_edited_entry_points_file_is_read_again(scan_path: Path) -> None:
    _names()
    _lie(scan_path)
    (scan_path / "cs_alpha-1.0.dist-info" / "entry_points.txt").write_text(
        "[cs_core]\nalpha = cs_alpha.other_hooks\n")
    assert _names() == [("alpha", "cs_alpha.other_hooks", "cs-alpha", "1.0")]


@pytest.mark.parametrize("spoil", ["group-writable", "symlink", "garbage"])
def test_a_cache_that_is_not_ours_and_sound_is_ignored(scan_path: Path, spoil: str) -> None:
    _names()
    _lie(scan_path)
    cache = _cache_file(scan_path)
    if spoil == "group-writable":
        cache.chmod(0o620)
    elif spoil == "symlink":
        real = cache.with_name("elsewhere.json")
        cache.rename(real)
        cache.symlink_to(real)
    else:
        cache.write_bytes(b"{\"key\": ")
    assert _names() == [("alpha", "cs_alpha.hooks", "cs-alpha", "1.0")]


def test_scans_of_other_paths_keep_their_own_files(scan_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from cs_core.drivers import entrypoints

    _names()
    _lie(scan_path)
    os.utime(_cache_file(scan_path), ns=(10**18 - 1, 10**18 - 1))  # the oldest
    others = []
    for n in range(entrypoints._CACHE_FILES + 3):  # more paths than files kept
        other = scan_path.parent / f"other{n}"
        _dist(other, f"cs_g{n}-3.0.dist-info", f"cs-g{n}", "3.0", f"[cs_core]\ng{n} = cs_g{n}\n")
        others.append(other)
        monkeypatch.setattr(sys, "path", [str(other)])
        assert _names() == [(f"g{n}", f"cs_g{n}", f"cs-g{n}", "3.0")]
        os.utime(_cache_file(scan_path), ns=(n + 10**18, n + 10**18))  # written in this order
    cache_dir = _cache_file(scan_path).parent
    assert len(list(cache_dir.glob("entry-points-*"))) == entrypoints._CACHE_FILES
    monkeypatch.setattr(sys, "path", [str(others[-1])])
    _lie(scan_path)  # the newest path's file is kept and still used
    assert _names()[0][1] == "planted.module"
    monkeypatch.setattr(sys, "path", [str(scan_path)])  # the oldest was pruned: scanned again
    assert _names() == [("alpha", "cs_alpha.hooks", "cs-alpha", "1.0")]


def test_entry_point_values_parse_as_importlib_metadata_parses_them() -> None:
    from cs_core.drivers.entrypoints import _parse_value

    assert _parse_value("pkg.mod") == ("pkg.mod", "")
    assert _parse_value("pkg.mod:obj.attr") == ("pkg.mod", "obj.attr")
    assert _parse_value("pkg.mod : obj [extra1, extra2]") == ("pkg.mod", "obj")
    for bad in ("pkg mod", "pkg:", "pkg:a b", "pkg [extra", ""):
        with pytest.raises(ValueError, match="invalid entry point value"):
            _parse_value(bad)


def test_an_indexed_zip_is_cached_by_the_zip_file(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The zipapp: its distributions have no stat of their own, the zip file's stands for them."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    tree = tmp_path / "tree"
    _dist(tree, "cs_alpha-1.0.dist-info", "cs-alpha", "1.0", "[cs_core]\nalpha = cs_alpha.hooks\n")
    app = _zip_of(tree, tmp_path / "app.zip", index=True)
    monkeypatch.setattr(sys, "path", [app])
    assert _names() == [("alpha", "cs_alpha.hooks", "cs-alpha", "1.0")]
    _lie(tmp_path / "site")  # _cache_file wants a sibling of the cache directory
    assert _names() == [("alpha", "planted.module", "cs-alpha", "1.0")]
    (tree / "cs_alpha-1.0.dist-info" / "entry_points.txt").write_text(
        "[cs_core]\nalpha = cs_alpha.rebuilt\n")
    Path(app).unlink()
    _zip_of(tree, tmp_path / "app.zip", index=True)  # a new build replaces the zip
    from cs_core.drivers import entrypoints  # and the next run is a new process:

    monkeypatch.setattr(entrypoints, "_zips", {})  # no importer of the old zip
    sys.path_importer_cache.pop(app, None)
    assert _names() == [("alpha", "cs_alpha.rebuilt", "cs-alpha", "1.0")]
