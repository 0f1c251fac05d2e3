"""Our entry-point scan finds what importlib.metadata finds, in the same order."""

from __future__ import annotations

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
