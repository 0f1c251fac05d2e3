"""The shape of the code, checked on the source (ast): which way imports point, which
cycles they make, and how big files and functions may grow (what plugins may import from the
core is tests/test_plugin_face.py's).

Rooms, lowest first; a module may import its own room and the rooms below it, never above.
Every import counts there, lazy (inside a function) and typing-only ones too: an arrow that
points up is a dependency a reader has to keep in mind whether or not it runs at import time.
Cycles are counted on the imports that run (typing-only ones never do).
The allow-lists name today's exceptions; each is owned by someone shrinking it, and an entry
that no longer matches fails the test so that the lists only get shorter.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CORE = REPO / "cs_core"

# The package root stands for itself alone (it re-exports the store's entry points lazily),
# not for every module under it: each of those must be listed.
ROOT = "cs_core"
ROOMS: list[tuple[str, set[str]]] = [
    ("foundation", {"cs_core.errors", "cs_core.model", "cs_core.walk", "cs_core.progress",
                    "cs_core.lazy", "cs_core.lazylog", "cs_core.recordclass", "cs_core.atomic",
                    "cs_core.lockfile", "cs_core.codec", "cs_core.goformat",
                    "cs_core.rootdirs", "cs_core.dedup", "cs_core.usercache", "cs_core.userns.rootless",
                    "cs_core.userns.idset"}),
    ("archive", {"cs_core.archive", "cs_core.copytree", "cs_core.userns"}),
    # config asks each driver class to read its storage.conf table (cs_core.drivers.base).
    ("drivers and records", {"cs_core.drivers", "cs_core.selection", "cs_core.records",
                             "cs_core.driver_hints", "cs_core.config"}),
    ("store", {"cs_core.store"}),
    ("store clients", {ROOT, "cs_core.images", "cs_core.testing"}),
    ("cli", {"cs_core.cli", "cs_core.__main__"}),
]

# Inside the store, the modules every operation builds on import no operation module.
STORE_BASE = {"cs_core.store.context", "cs_core.store.options", "cs_core.store.bigdata",
              "cs_core.store.intents", "cs_core.store.templates"}

# Upward arrows today: the typed hook façade names the Store it hands to plugins (typing only).
UPWARD_ALLOWED = {("cs_core.drivers.hookspecs", "cs_core.store"),
                  ("cs_core.drivers.plugins", "cs_core.store")}

# Import cycles today: none (an entry here is a cycle someone owns and is breaking).
CYCLES_ALLOWED: list[set[str]] = []

MAX_FILE_LINES = 600
MAX_FUNCTION_LINES = 60
# Today's offenders outside the store (each owned by another change that shrinks it).
LONG_FILES_ALLOWED: set[str] = set()
LONG_FUNCTIONS_ALLOWED: set[str] = set()


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules(package_dir: Path) -> dict[str, Path]:
    return {_module_name(p, package_dir.parent): p for p in sorted(package_dir.rglob("*.py"))
            if ".venv" not in p.parts}


CORE_MODULES = _modules(CORE)


def _typing_only(tree: ast.Module) -> set[int]:
    """ids of the import nodes under ``if TYPE_CHECKING:``."""
    found: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING"):
            found.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    return found


def _imports(path: Path, module: str, typing: bool = True) -> Iterator[str]:
    """Core modules ``path`` imports, submodules resolved (``from cs_core.store import layers``
    is an import of cs_core.store.layers, not of the façade); without ``typing``, not those
    under ``if TYPE_CHECKING:``."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    tree = ast.parse(path.read_text(), str(path))
    skip = set() if typing else _typing_only(tree)
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name.split(".")[0] == "cs_core")
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            if base.split(".")[0] != "cs_core":
                continue
            subs = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in CORE_MODULES]
            yield from subs
            if len(subs) < len(node.names):
                yield base


def _room(module: str) -> int:
    best = -1, -1  # (length of the matching prefix, room)
    for i, (_, members) in enumerate(ROOMS):
        for prefix in members:
            within = module == prefix or (prefix != ROOT and module.startswith(prefix + "."))
            if within and len(prefix) > best[0]:
                best = len(prefix), i
    assert best[1] >= 0, f"{module} is in no room: add it to ROOMS"
    return best[1]


def _graph(typing: bool = True) -> dict[str, set[str]]:
    return {m: set(_imports(p, m, typing)) for m, p in CORE_MODULES.items()}


def test_every_core_module_is_in_a_room() -> None:
    for module in CORE_MODULES:
        _room(module)


def test_no_core_import_points_to_a_higher_room() -> None:
    upward = {(m, t) for m, targets in _graph().items() for t in targets if _room(t) > _room(m)}
    assert sorted(upward - UPWARD_ALLOWED) == []
    assert sorted(UPWARD_ALLOWED - upward) == [], "no longer imported: drop it"


def test_nothing_behind_the_store_facade_imports_it() -> None:
    graph = _graph()
    back = [f"{m} imports the façade" for m, targets in graph.items()
            if m.startswith("cs_core.store.") and "cs_core.store" in targets]
    up = [f"{m} imports {t}" for m in STORE_BASE for t in sorted(graph[m])
          if t.startswith("cs_core.store") and t not in STORE_BASE]
    assert back + up == []


def _cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components of more than one module (iterative Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, targets = work[-1]
            target = next(targets, None)
            if target is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(component)
            elif target not in index:
                index[target] = low[target] = len(index)
                stack.append(target)
                on_stack.add(target)
                work.append((target, iter(sorted(graph.get(target, ())))))
            elif target in on_stack:
                low[node] = min(low[node], index[target])
    return found


def test_no_import_cycles_but_the_known_ones() -> None:
    # Typing-only imports never run, so they cannot make one module wait for another.
    graph = _graph(typing=False)
    # A package's __init__ re-exporting its submodules is not a cycle a reader follows.
    for module, targets in graph.items():
        targets.discard(module.rpartition(".")[0])
    cycles = _cycles(graph)
    assert [c for c in cycles if c not in CYCLES_ALLOWED] == []
    assert [c for c in CYCLES_ALLOWED if c not in cycles] == [], "a cycle is gone: drop it"


def _long_functions(path: Path) -> Iterator[tuple[str, int]]:
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if length > MAX_FUNCTION_LINES:
                yield node.name, length


def test_no_core_file_is_over_600_lines() -> None:
    long = {str(p.relative_to(REPO)) for p in CORE_MODULES.values()
            if len(p.read_text().splitlines()) > MAX_FILE_LINES}
    assert sorted(long - LONG_FILES_ALLOWED) == []
    assert sorted(LONG_FILES_ALLOWED - long) == [], "short enough now: drop it"


def test_no_core_function_is_over_60_lines() -> None:
    long = {f"{p.relative_to(REPO)}::{name}" for p in CORE_MODULES.values()
            for name, _ in _long_functions(p)}
    assert sorted(long - LONG_FUNCTIONS_ALLOWED) == []
    assert sorted(LONG_FUNCTIONS_ALLOWED - long) == [], "short enough now: drop it"
