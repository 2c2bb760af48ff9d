"""The project's import graph, checked: no cycles, and no import that runs against the layers.

``python -m tests.import_graph`` prints every violation (exit 1) or a one-line summary (exit 0).
Imports inside functions count (a lazy import still ties two modules together); imports under
``if TYPE_CHECKING:`` do not (they never run). A package's ``__init__`` is a module of its own.

Layers, lowest first; a module may import its own layer or a lower one, never a higher one:

0. ``harness.errors`` and the package's own ``__init__`` (whose re-exports resolve lazily).
1. ``harness.io``, ``harness.tracking``, ``harness.parallel.ranks``: files, trackers and rank helpers,
   knowing nothing of runs or models.
2. ``harness.engine``: study files → run store → execution; it runs any pipeline without knowing a model.
3. ``harness.worlds.base``, ``harness.evaluation``: what a world and a metric provide.
4. ``harness.diffusion``: conventions, schedules, the causal sampler, the KV cache, the Backbone protocol.
5. ``harness.parallel``: the training strategies (DDP, FSDP2).
6. ``harness.training``: the one training loop, its EMA, settings and evaluation hook.
7. plugins: ``methods``, the worlds themselves, ``harness.pipelines``, ``harness.executors``,
   ``harness.sweep``.
8. ``reports``: reads results.
9. ``harness.commands``, ``harness.cli``: the command line, on top of everything.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("harness", "methods", "reports")

# longest prefix wins
LAYERS: dict[str, int] = {
    "harness": 0,
    "harness.errors": 0,
    "harness.io": 1,
    "harness.tracking": 1,
    "harness.parallel.ranks": 1,
    "harness.engine": 2,
    "harness.worlds.base": 3,
    "harness.evaluation": 3,
    "harness.diffusion": 4,
    "harness.parallel": 5,
    "harness.training": 6,
    "methods": 7,
    "harness.worlds": 7,  # every world package is a plugin; only worlds/base.py (the interfaces) sits low
    "harness.pipelines": 7,
    "harness.executors": 7,
    "harness.sweep": 7,
    "reports": 8,
    "harness.commands": 9,
    "harness.cli": 9,
}


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    line: int
    lazy: bool


def layer_of(module: str) -> int:
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        prefix = ".".join(parts[:end])
        if prefix == "harness" and end < len(parts):
            break  # a new subpackage of harness must be given its layer
        if prefix in LAYERS:
            return LAYERS[prefix]
    raise KeyError(f"{module}: no layer declared in tests/import_graph.py")


def modules(root: Path = ROOT) -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def _type_checking_blocks(tree: ast.Module) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            ids.update(id(child) for stmt in node.body for child in ast.walk(stmt))
    return ids


def _imported_names(node: ast.AST, module: str, is_package: bool, found: dict[str, Path]) -> list[str]:
    """Modules an import statement loads: ``from pkg import sub`` names ``pkg.sub``, not ``pkg``."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        if node.level:
            base = module.split(".") if is_package else module.split(".")[:-1]
            base = base[: len(base) - (node.level - 1)]
            target = ".".join(base + ([node.module] if node.module else []))
        else:
            target = node.module or ""
        names = [f"{target}.{alias.name}" for alias in node.names]
        if all(name in found for name in names):
            return names
        return [target, *names]
    return []


def edges(found: dict[str, Path]) -> list[Edge]:
    result = []
    for module, path in found.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        skip = _type_checking_blocks(tree)
        top_level = {id(stmt) for stmt in tree.body}
        for node in ast.walk(tree):
            if id(node) in skip:
                continue
            targets = set()
            for name in _imported_names(node, module, path.name == "__init__.py", found):
                while name and name not in found:
                    name = name.rpartition(".")[0]
                if name and name != module:
                    targets.add(name)
            for target in sorted(targets):
                result.append(Edge(module, target, node.lineno, id(node) not in top_level))
    return result


def cycles(all_edges: Iterable[Edge]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    graph: dict[str, set[str]] = {}
    for edge in all_edges:
        graph.setdefault(edge.source, set()).add(edge.target)
        graph.setdefault(edge.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def upward(all_edges: Iterable[Edge]) -> list[Edge]:
    return [e for e in all_edges if layer_of(e.target) > layer_of(e.source)]


def problems(root: Path = ROOT) -> list[str]:
    found = modules(root)
    all_edges = edges(found)
    lines = [f"cycle: {' ↔ '.join(c)}" for c in cycles(all_edges)]
    for edge in upward(all_edges):
        kind = "lazy import" if edge.lazy else "import"
        lines.append(
            f"upward {kind}: {edge.source} (layer {layer_of(edge.source)}) → {edge.target} "
            f"(layer {layer_of(edge.target)}), {found[edge.source].relative_to(root)}:{edge.line}"
        )
    return lines


def main() -> int:
    found = problems()
    for line in found:
        print(line)
    if not found:
        count = len(modules())
        print(f"ok: {count} modules, no cycle, no upward import")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
