"""Entry points of one group, found the way ``importlib.metadata`` finds them, without importing it.

``importlib.metadata`` pulls in email, zipfile, csv and more: ~25 ms, a fifth of a CLI run that
only needs three lines of ``entry_points.txt``. This reads the same files with the same rules:
``*.dist-info`` and ``*.egg-info`` directories in ``sys.path`` order, the first distribution of a
(normalized) name wins, and ``module:attr`` values are imported only by ``load()``. A zipped
path entry (the ``make binary`` zipapp) is read through its zipimporter when it holds an index
of its metadata directories (``ZIP_INDEX``, written by scripts/build_binary.py: a zip cannot be
listed without parsing its whole directory again); any other zip is searched by
``importlib.metadata`` instead.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from collections.abc import Iterable, Iterator
from typing import Any, Protocol

_VALUE = re.compile(r"(?P<module>[\w.]+)\s*(:\s*(?P<attr>[\w.]+)\s*)?((?P<extras>\[.*\])\s*)?$")
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

    def __init__(self, path: str) -> None:
        self.path = path
        self.name = ""
        self.version = ""
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
        match = _VALUE.match(self.value)
        if match is None:
            raise ValueError(f"invalid entry point value {self.value!r}")
        obj: Any = importlib.import_module(match.group("module"))
        for part in filter(None, (match.group("attr") or "").split(".")):
            obj = getattr(obj, part)
        return obj


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


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
    """Every entry point in ``group``, in importlib.metadata's order."""
    if paths is None:
        paths = sys.path
    paths = list(paths)
    for zip_path in (p for p in paths if p and os.path.isfile(p)):
        if zip_path not in _zips and (importer := _zip_importer(zip_path)) is not None:
            _zips[zip_path] = importer
        if zip_path not in _zips:  # a zip we cannot list cheaply: the full machinery
            return _entry_points_by_importlib(group, paths)
    seen: set[str] = set()
    found: list[EntryPointLike] = []
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
    return found
