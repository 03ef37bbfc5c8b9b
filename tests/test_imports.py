"""No import circle among simulator's packages (and top-level modules).

Every import in every module counts, at module level or inside a function (a lazy import hides a
circle from Python, not from the design); only imports under ``if TYPE_CHECKING:`` (annotations)
are left out. Packages are the units: simulator.config, simulator.topology, simulator.explore, ...;
a top-level module such as simulator/cli.py is a unit of its own.
"""
from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

PKG = Path(__file__).resolve().parents[1] / "simulator"


def unit(module: str) -> str:
    """simulator.config.scenario -> simulator.config; simulator.cli -> simulator.cli."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else module


def _type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or \
           (isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def imports(tree: ast.AST):
    """(line, module) of every simulator import, skipping TYPE_CHECKING blocks."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            yield from ((node.lineno, a.name) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module
            yield from ((node.lineno, f"{node.module}.{a.name}") for a in node.names)
        stack.extend(ast.iter_child_nodes(node))


def _exists(module: str) -> bool:
    path = PKG.parent.joinpath(*module.split("."))
    return path.is_dir() or path.with_suffix(".py").exists()


def import_graph() -> nx.DiGraph:
    G = nx.DiGraph()
    for f in sorted(PKG.rglob("*.py")):
        module = ".".join(f.relative_to(PKG.parent).with_suffix("").parts).removesuffix(".__init__")
        for line, target in imports(ast.parse(f.read_text(encoding="utf-8"))):
            if not target.startswith("simulator.") or not _exists(target):
                continue
            a, b = unit(module), unit(target)
            if a != b and "simulator" not in (a, b):
                G.add_edge(a, b)
                G.edges[a, b].setdefault("at", []).append(f"{f.relative_to(PKG.parent)}:{line}")
    return G


def test_no_import_circle_among_packages():
    G = import_graph()
    circles = list(nx.simple_cycles(G))
    report = []
    for c in circles:
        report.append(" -> ".join(c + c[:1]))
        for a, b in zip(c, c[1:] + c[:1]):
            report.append(f"    {a} -> {b}: {', '.join(G.edges[a, b]['at'][:3])}")
    assert not circles, "import circles:\n" + "\n".join(report)


def test_the_walk_sees_lazy_imports_and_skips_annotations():
    tree = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import simulator.a\n"
                     "def f():\n    from simulator.b import x\n")
    assert sorted(m for _, m in imports(tree)) == ["simulator.b", "simulator.b.x", "typing", "typing.TYPE_CHECKING"]


def test_nothing_below_the_face_imports_the_cli():
    """The command line is the top: only `python -m simulator` imports it."""
    G = import_graph()
    assert set(G.predecessors("simulator.cli")) <= {"simulator.__main__"}
