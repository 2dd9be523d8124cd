"""The import graph of src/petspect, read from the source (every import, at module level or in a function).

A cycle hidden behind a function-level import is still a cycle, so the graph counts both. The checks:
no cycle between modules, none between packages (``petspect.a.b`` belongs to package ``a``; a top-level
module ``petspect.m`` is its own package), and the lower layers import only downwards:
io/phantoms/geometry/operators -> physics and projectors (peers that never import each other) ->
systems -> recon -> simulate.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PKG = "petspect"


def _module_files() -> dict[str, Path]:
    mods = {}
    for path in (SRC / PKG).rglob("*.py"):
        parts = path.relative_to(SRC).with_suffix("").parts
        mods[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return mods


def _targets(module: str, path: Path, node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    here = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    if node.level:
        base = ".".join(here[: len(here) - (node.level - 1)] + ([node.module] if node.module else []))
    else:
        base = node.module or ""
    return [base] + [f"{base}.{alias.name}" for alias in node.names]  # `from pkg import module`


def module_graph() -> dict[str, set[str]]:
    """Module -> internal modules it imports (the longest existing prefix of each import target)."""
    mods = _module_files()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for module, path in mods.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            for target in _targets(module, path, node):
                while target and target not in mods:
                    target = target.rpartition(".")[0]
                if target and target not in (module, PKG):
                    graph[module].add(target)
    return graph


def package_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for module, targets in graph.items():
        for target in targets:
            a, b = package_of(module), package_of(target)
            if a != b:
                out.setdefault(a, set()).add(b)
    return out


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    comp.append(top)
                    if top == node:
                        break
                if len(comp) > 1:
                    found.append(sorted(comp))
    return found


def test_cycle_finder_finds_a_planted_cycle():
    """The checker itself: a planted a -> b -> c -> a cycle and a self-contained DAG."""
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_no_module_cycle():
    assert cycles(module_graph()) == []


def test_no_package_cycle():
    assert cycles(package_graph(module_graph())) == []


#: rank of each lower-layer package: a package may import only packages of a lower rank (or base modules)
RANKS = {"io": 1, "phantoms": 1, "geometry": 1, "operators": 1, "physics": 2, "projectors": 2, "systems": 3,
         "recon": 4, "simulate": 5}


@pytest.mark.parametrize("package", sorted(RANKS))
def test_lower_layers_import_downwards(package):
    """physics and projectors are peers below systems; recon sits on systems; simulate on recon."""
    pg = package_graph(module_graph())
    rank = RANKS[package]
    # the bottom layer's packages (rank 1) may use each other (the cycle tests keep that acyclic)
    upward = sorted(t for t in pg.get(package, ()) if t in RANKS and (RANKS[t] > rank or (RANKS[t] == rank > 1)))
    assert upward == [], f"{package} imports {upward} (same or higher layer)"
