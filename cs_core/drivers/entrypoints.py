"""Entry points of one group, found the way ``importlib.metadata`` finds them, without importing it.

``importlib.metadata`` pulls in email, zipfile, csv and more: ~25 ms, a fifth of a CLI run that
only needs three lines of ``entry_points.txt``. This reads the same files with the same rules:
``*.dist-info`` and ``*.egg-info`` directories in ``sys.path`` order, the first distribution of a
(normalized) name wins, and ``module:attr`` values are imported only by ``load()``. A zipped
path entry (the ``make binary`` zipapp) is read through its zipimporter when it holds an index
of its metadata directories (``ZIP_INDEX``, written by scripts/build_binary.py: a zip cannot be
listed without parsing its whole directory again); any other zip is searched by
``importlib.metadata`` instead.

A scan of ``sys.path`` lists every path directory and opens every distribution's
``entry_points.txt`` (~1.4 ms of a ~55 ms CLI run in a venv of 25 distributions), so its result
is cached per user, keyed by what the scan read: each path directory's identity and mtime
(installing or removing a distribution adds or removes a directory in it, which is also what
``importlib.metadata`` keys its own lookups by) and each contributing distribution's files.
The cache steers which modules get imported, so it is used only when it is ours and not
writable by others, exactly as storage.conf's parse cache (cs_core.config).
"""

from __future__ import annotations

import binascii
import contextlib
import importlib
import os
import sys
from collections.abc import Iterable, Iterator
from typing import Any, Protocol

from cs_core.usercache import cache_path, read_trusted_json, stat_stamp, write_json

_SUFFIXES = (".dist-info", ".egg-info")
#: In a zipped path entry: the names of its metadata directories, one a line.
ZIP_INDEX = "cs_core-dist-infos.txt"


class EntryPointLike(Protocol):
    """What the registry uses of an entry point (ours or ``importlib.metadata``'s)."""

    @property
    def name(self) -> str: ...

    @property
    def value(self) -> str: ...

    def load(self) -> Any: ...


class Distribution:
    """Name and version of an installed distribution, from its metadata file's headers."""

    def __init__(self, path: str, known: tuple[str, str] | None = None) -> None:
        self.path = path
        self.name = ""
        self.version = ""
        if known is not None:  # from the scan cache, which read these headers
            self.name, self.version = known
            return
        for file in ("METADATA", "PKG-INFO"):
            try:
                text = _read_text(os.path.join(path, file))
            except OSError:
                continue
            for line in text.splitlines():
                if not line.strip():
                    break  # headers end at the first blank line
                key, _, value = line.partition(":")
                if key == "Name" and not self.name:
                    self.name = value.strip()
                elif key == "Version" and not self.version:
                    self.version = value.strip()
            break


class EntryPoint:
    """One ``name = module:attr`` line (the attributes ``importlib.metadata.EntryPoint`` has)."""

    def __init__(self, name: str, value: str, group: str, dist: Distribution | None) -> None:
        self.name = name
        self.value = value
        self.group = group
        self.dist = dist

    def load(self) -> Any:
        module, attr = _parse_value(self.value)
        obj: Any = importlib.import_module(module)
        for part in filter(None, attr.split(".")):
            obj = getattr(obj, part)
        return obj


def _dotted(name: str) -> bool:
    """Whether ``name`` is ``[\\w.]+`` (word characters and dots)."""
    return bool(name) and (name.replace(".", "").replace("_", "a") or "a").isalnum()


def _parse_value(value: str) -> tuple[str, str]:
    """``module[:attr] [extras]`` (importlib.metadata's pattern, without compiling a regex
    every run): the module and the (possibly empty) dotted attribute path."""
    head, bracket, extras = value.partition("[")
    module, colon, attr = head.partition(":")
    module, attr = module.rstrip(), attr.strip()
    if (not _dotted(module) or (colon and not _dotted(attr))
            or (bracket and not extras.rstrip().endswith("]"))):
        raise ValueError(f"invalid entry point value {value!r}")
    return module, attr


_SEPARATORS = str.maketrans("-.", "__")


def _normalize(name: str) -> str:
    """PEP 503's normalized name (runs of ``-_.`` become one ``_``), lower case."""
    name = name.translate(_SEPARATORS)
    while "__" in name:
        name = name.replace("__", "_")
    return name.lower()


def _sections(text: str) -> Iterator[tuple[str, str, str]]:
    """(group, name, value) for each entry, by importlib.metadata's ``Sectioned`` rules."""
    group = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            group = line[1:-1].strip()
            continue
        name, sep, value = line.partition("=")
        if sep:
            yield group, name.strip(), value.strip()


#: Zipped path entries (by path) whose metadata directories are indexed: their importers.
_zips: dict[str, Any] = {}


def _zip_importer(path: str) -> Any:
    """``path``'s zipimporter if it has an index, else None. The one the import system made
    for it is reused: a new one would parse the zip's directory again."""
    import zipimport

    importer = sys.path_importer_cache.get(path)
    try:
        if not isinstance(importer, zipimport.zipimporter):
            importer = zipimport.zipimporter(path)
        importer.get_data(os.path.join(path, ZIP_INDEX))
    except (OSError, zipimport.ZipImportError):
        return None
    return importer


def _read_text(path: str) -> str:
    """A file's text, also when it lies inside an indexed zip (OSError if it cannot be read)."""
    for zip_path, importer in _zips.items():
        if path.startswith(zip_path + os.sep):
            data: bytes = importer.get_data(path)
            return data.decode("utf-8")
    with open(path, encoding="utf-8") as f:
        return f.read()


def _metadata_dirs(paths: Iterable[str]) -> Iterator[str]:
    for entry in paths:
        base = entry or "."
        try:
            names = _read_text(os.path.join(base, ZIP_INDEX)).split() if base in _zips \
                else os.listdir(base)
        except OSError:
            continue  # missing directories
        for name in names:
            if name.lower().endswith(_SUFFIXES):
                yield os.path.join(base, name)


def _entry_points_by_importlib(group: str, paths: list[str]) -> list[EntryPointLike]:
    """importlib.metadata's ``entry_points(group=)``, over ``paths`` rather than sys.path."""
    from importlib import metadata

    seen: set[str] = set()
    found: list[EntryPointLike] = []
    for dist in metadata.distributions(path=paths):
        key = _normalize(dist.metadata["Name"] or "")
        if key not in seen:
            seen.add(key)
            found += [ep for ep in dist.entry_points if ep.group == group]
    return found


def entry_points(group: str, paths: Iterable[str] | None = None) -> list[EntryPointLike]:
    """Every entry point in ``group``, in importlib.metadata's order (over ``sys.path`` by
    default, then through the scan cache)."""
    if paths is None:
        return _cached_scan(group, list(sys.path))
    return _scan(group, list(paths))[0]


def _scan(group: str, paths: list[str]) -> tuple[list[EntryPointLike], list[str] | None]:
    """The entry points and the distribution directories they came from, outside zips (None
    when a zip without an index was searched: no cache then)."""
    for zip_path in (p for p in paths if p and os.path.isfile(p)):
        if zip_path not in _zips and (importer := _zip_importer(zip_path)) is not None:
            _zips[zip_path] = importer
        if zip_path not in _zips:  # a zip we cannot list cheaply: the full machinery
            return _entry_points_by_importlib(group, paths), None
    seen: set[str] = set()
    found: list[EntryPointLike] = []
    # A distribution inside an indexed zip (the zipapp) has no stat of its own: the zip's
    # (a path entry, in the key) stands for it.
    sources: list[str] = []
    for path in _metadata_dirs(paths):
        # Distribution names are unique by normalized name; the directory name starts with it.
        key = _normalize(os.path.basename(path).rsplit(".", 1)[0].split("-", 1)[0])
        if key in seen:
            continue
        seen.add(key)
        try:
            text = _read_text(os.path.join(path, "entry_points.txt"))
        except OSError:
            continue
        dist: Distribution | None = None
        for ep_group, name, value in _sections(text):
            if ep_group == group:
                dist = dist or Distribution(path)
                found.append(EntryPoint(name, value, group, dist))
        if dist is not None and not any(path.startswith(z + os.sep) for z in _zips):
            sources.append(path)
    return found, sources


# -- the scan cache ------------------------------------------------------------------------------

#: Cache files kept (one per interpreter and path: venvs, worktrees, test runs' temporary
#: paths sharing a home); a miss that writes one removes the least recently written beyond.
_CACHE_FILES = 16
_CACHE_PREFIX = "entry-points-"


def _cache_file(paths: list[str]) -> str | None:
    """Per user, beside storage.conf's parse cache (a cache another user could write must not
    choose the modules we import), one file per path: a shared file would be rewritten by
    every run of another path (test suites run with temporary ones)."""
    # No passwd lookup without HOME: the scan is the fallback.
    # A collision only costs a rescan: the entry's key names its paths in full.
    tag = binascii.crc32("\0".join(paths).encode("utf-8", "surrogateescape"))
    return cache_path(f"{_CACHE_PREFIX}{tag:08x}.json", os.environ.get("HOME"))


def _stat_key(path: str) -> list[int] | None:
    try:
        return stat_stamp(os.stat(path))
    except OSError:
        return None


def _scan_key(group: str, paths: list[str], sources: list[str]) -> list[Any]:
    """What a scan's result depends on: the path directories' listings (their identity and
    mtime) and each contributing distribution's directory and files."""
    files = [os.path.join(d, f) for d in sources for f in ("", "entry_points.txt", "METADATA",
                                                            "PKG-INFO")]
    return [group, paths, [_stat_key(p or ".") for p in paths], [[f, _stat_key(f)] for f in files]]


def _cached_scan(group: str, paths: list[str]) -> list[EntryPointLike]:
    cache = _cache_file(paths)
    entry = read_trusted_json(cache)
    if (isinstance(entry, dict) and isinstance(sources := entry.get("sources"), list)
            and all(isinstance(s, str) for s in sources)
            and entry.get("key") == _scan_key(group, paths, sources)):
        found = _from_cache(entry.get("entry_points"), group)
        if found is not None:
            return found
    found, new_sources = _scan(group, paths)
    if new_sources is not None:
        _write_cache(cache, _entry(_scan_key(group, paths, new_sources), new_sources, found))
    return found


def _entry(key: list[Any], sources: list[str], found: list[EntryPointLike]) -> dict[str, Any]:
    rows = []
    for ep in found:
        dist = getattr(ep, "dist", None)
        rows.append([ep.name, ep.value, dist.path, dist.name, dist.version] if dist else None)
    return {"key": key, "sources": sources, "entry_points": rows}


def _from_cache(rows: Any, group: str) -> list[EntryPointLike] | None:
    """The cached entry points, or None if the rows are not what ``_write_cache`` writes."""
    if not isinstance(rows, list):
        return None
    found: list[EntryPointLike] = []
    dists: dict[str, Distribution] = {}
    for row in rows:
        if not (isinstance(row, list) and len(row) == 5 and all(isinstance(v, str) for v in row)):
            return None
        name, value, path, dist_name, version = row
        dist = dists.setdefault(path, Distribution(path, (dist_name, version)))
        found.append(EntryPoint(name, value, group, dist))
    return found


def _write_cache(cache: str | None, entry: dict[str, Any]) -> None:
    """Best effort (cs_core.usercache.write_json): a lost or stale cache only costs a scan,
    the key being checked on every read."""
    if cache is not None and write_json(cache, entry):
        with contextlib.suppress(OSError):
            _prune(os.path.dirname(cache))


def _prune(directory: str) -> None:
    """Keep the ``_CACHE_FILES`` most recently written cache files."""
    files = []
    for name in os.listdir(directory):
        if name.startswith(_CACHE_PREFIX):
            with contextlib.suppress(OSError):
                files.append((os.lstat(os.path.join(directory, name)).st_mtime_ns, name))
    for _mtime, name in sorted(files)[:-_CACHE_FILES]:
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(directory, name))
