"""Our entry-point scan finds what importlib.metadata finds, in the same order."""

from __future__ import annotations

import sys
from importlib import metadata
from pathlib import Path

from cs_core.drivers.entrypoints import entry_points
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
