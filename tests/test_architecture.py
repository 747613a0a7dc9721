"""The package layering: no flowkit package imports one that imports it back, counting every
import (module level, inside functions, and under TYPE_CHECKING)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "flowkit"


def _unit(module: str) -> str | None:
    """The top-level unit a dotted flowkit module belongs to: its subpackage or leaf module
    (`flowkit.spec.loader` -> `spec`, `flowkit.errors` -> `errors`), `flowkit` for the root."""
    parts = module.split(".")
    if parts[0] != "flowkit":
        return None
    if len(parts) == 1:
        return "flowkit"
    if (PACKAGE / parts[1]).is_dir() or (PACKAGE / f"{parts[1]}.py").is_file():
        return parts[1]
    return "flowkit"  # an attribute of the root package (`from flowkit import __version__`)


def _imports(source: str, module: str, is_package: bool = False) -> set[str]:
    """Every flowkit module the source of `module` imports, anywhere in the file."""
    package = module.split(".") if is_package else module.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package[: len(package) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            # `from flowkit import app` imports the module flowkit.app, not the root
            found |= {f"{base}.{alias.name}" if _is_module(f"{base}.{alias.name}") else base
                      for alias in node.names}
    return found


def _is_module(dotted: str) -> bool:
    rel = Path(*dotted.split(".")[1:]) if dotted.startswith("flowkit.") else None
    return rel is not None and ((PACKAGE / rel).is_dir() or (PACKAGE / rel).with_suffix(".py").is_file())


def import_graph() -> dict[str, dict[str, set[str]]]:
    """unit -> {imported unit: the modules that import it}."""
    graph: dict[str, dict[str, set[str]]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        module = module.removesuffix(".__init__")
        unit = _unit(module) or module
        edges = graph.setdefault(unit, {})
        for target in _imports(path.read_text(encoding="utf-8"), module, path.name == "__init__.py"):
            other = _unit(target)
            if other is not None and other != unit:
                edges.setdefault(other, set()).add(module)
    return graph


def cycles(graph: dict[str, dict[str, set[str]]]) -> list[list[str]]:
    """One path per strongly connected group of units (Tarjan), each closing on its start."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return groups


def test_the_package_import_graph_has_no_cycles() -> None:
    graph = import_graph()
    found = cycles(graph)
    detail = [f"{' <-> '.join(g)}: " + "; ".join(
        f"{a} -> {b} ({', '.join(sorted(graph[a][b]))})" for a in g for b in g if b in graph[a])
        for g in found]
    assert not found, "package import cycles:\n" + "\n".join(detail)


def test_the_checker_sees_every_kind_of_import_and_finds_cycles() -> None:
    # It must be able to fail: a two-package loop and a three-package loop are found.
    graph = {"a": {"b": {"flowkit.a.x"}}, "b": {"a": {"flowkit.b.y"}}, "c": {"d": set()},
             "d": {"e": set()}, "e": {"c": set()}, "f": {"a": set()}}
    assert cycles(graph) == [["a", "b"], ["c", "d", "e"]]
    source = ("from typing import TYPE_CHECKING\n"
              "if TYPE_CHECKING:\n    from flowkit.risk import RiskEngine\n"
              "def late():\n    from flowkit.app import run\n    from ..store import open_reader\n"
              "    import flowkit.market.clock\n")
    found = {_unit(m) for m in _imports(source, "flowkit.cli.commands")}
    assert found == {"risk", "app", "store", "market", None}


@pytest.mark.parametrize("layer, below", [
    ("app", ["backtest", "runtime", "memory", "store", "spec"]),
    ("backtest", ["runtime", "broker", "portfolio", "risk"]),
    ("runtime", ["graph", "llm", "market", "spec", "store"]),
    ("cli", ["app"]),
])
def test_layers_import_downwards(layer: str, below: list[str]) -> None:
    graph = import_graph()
    for lower in below:
        assert lower in graph[layer], f"{layer} no longer uses {lower}: update this test"
        assert layer not in _reachable(graph, lower), f"{lower} reaches back up to {layer}"


def _reachable(graph: dict[str, dict[str, set[str]]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for w in graph.get(todo.pop(), {}):
            if w not in seen:
                seen.add(w)
                todo.append(w)
    return seen
