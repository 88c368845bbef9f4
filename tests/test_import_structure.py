"""The import structure: packages form a DAG and the library never imports the CLI.

Every ``import`` in ``edgecompress/`` counts, including the lazy ones inside functions: a
lazy import is still a dependency, and a cycle between packages means neither can be
understood (or replaced) without the other.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "edgecompress"


def _unit(module: str) -> str | None:
    """``edgecompress.cost.graph`` -> ``cost``; ``edgecompress.select`` -> ``select``."""
    parts = module.split(".")
    if parts[0] != "edgecompress" or len(parts) == 1:
        return None
    return parts[1]


def package_graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = defaultdict(set)
    for f in ROOT.rglob("*.py"):
        rel = f.relative_to(ROOT).with_suffix("")
        src = rel.parts[0]
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                targets = [node.module]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            for t in targets:
                dst = _unit(t)
                if dst is not None and dst != src and src != "__init__":
                    edges[src].add(dst)
    return edges


def _cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle in the graph, or None (iterative DFS with colours)."""
    colour: dict[str, int] = {}
    stack_path: list[str] = []

    def visit(n: str) -> list[str] | None:
        colour[n] = 1
        stack_path.append(n)
        for m in sorted(edges.get(n, ())):
            if colour.get(m) == 1:
                return stack_path[stack_path.index(m):] + [m]
            if m not in colour:
                found = visit(m)
                if found:
                    return found
        colour[n] = 2
        stack_path.pop()
        return None

    for n in sorted(edges):
        if n not in colour:
            found = visit(n)
            if found:
                return found
    return None


def test_packages_form_a_dag() -> None:
    cycle = _cycle(package_graph())
    assert cycle is None, "import cycle between packages/modules: " + " -> ".join(cycle or [])


def test_the_library_never_imports_the_cli() -> None:
    edges = package_graph()
    offenders = sorted(src for src, dsts in edges.items() if "cli" in dsts and src not in ("cli", "__main__"))
    assert not offenders, f"library modules importing edgecompress.cli: {offenders}"


def test_the_checker_sees_a_cycle() -> None:
    # The test above must be able to fail.
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
