"""The package's folders are its layers, and imports point down them:

    entry → cli → run, sweep, tracking → report → engines → spark → core, records → data → common

A module imports only from its own layer or the layers below it, and no chain of imports
comes back to where it started. Every import of every module counts, those inside functions
too (engines import their heavy dependencies lazily, and so could they import something above
them)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO

PACKAGE = REPO / "app" / "higgsbench"
# top first; a layer is one or more subpackages or modules of the package
LAYERS = [
    ("higgsbench.entry", "higgsbench.__main__"),
    ("higgsbench.cli",),
    ("higgsbench.run", "higgsbench.sweep", "higgsbench.tracking"),
    ("higgsbench.report",),
    ("higgsbench.engines",),
    ("higgsbench.spark",),
    ("higgsbench.core", "higgsbench.records"),
    ("higgsbench.data",),
    ("higgsbench.common",),
]
# The bottom of the bottom: what the entry point installs before anything else is imported,
# and what writes files; the standard library only.
STANDARD_LIBRARY_ONLY = (
    "higgsbench.common.atomic",
    "higgsbench.common.signals",
    "higgsbench.common.redact",
)


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, name: str | None = None) -> set[str]:
    """Every module of the package ``path`` (module ``name``) imports, anywhere in it, as
    absolute names."""
    name = name or _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from a.b import c`: the module a.b.c when c is one, else a.b
            for alias in node.names:
                found.add(_existing(f"{base}.{alias.name}") or base)
    return {i for i in found if i == "higgsbench" or i.startswith("higgsbench.")}


MODULES = sorted(PACKAGE.rglob("*.py"))
NAMES = {_module_name(p) for p in MODULES}


def _existing(name: str) -> str | None:
    return name if name in NAMES else None


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def layer(name: str) -> int | None:
    """The layer of a module (0 is the top), or None for the package itself."""
    for depth, members in enumerate(LAYERS):
        if any(_within(name, member) for member in members):
            return depth
    return None


def test_every_module_is_in_a_layer():
    lost = sorted(n for n in NAMES if n != "higgsbench" and layer(n) is None)
    assert not lost, f"modules in no layer of LAYERS: {lost}"


@pytest.mark.parametrize("path", MODULES, ids=_module_name)
def test_nothing_imports_what_is_above_it(path):
    name = _module_name(path)
    if layer(name) is None:
        return
    above = sorted(i for i in imports(path) if layer(i) is not None and layer(i) < layer(name))
    assert not above, f"{name} imports {above}, which sit above it"


@pytest.mark.parametrize("name", STANDARD_LIBRARY_ONLY)
def test_the_bottom_imports_only_the_standard_library(name):
    path = next(p for p in MODULES if _module_name(p) == name)
    assert imports(path) == set(), f"{name} imports {sorted(imports(path))}"


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Chains of imports that come back to where they started. A package's __init__ is
    entered by importing any of its modules: a module importing its own package is none."""
    graph = {n: {i for i in deps if not _within(n, i)} for n, deps in graph.items()}
    cycles: list[list[str]] = []
    done: set[str] = set()

    def visit(node, trail):
        for nxt in sorted(graph.get(node, ())):
            if nxt in trail:
                cycles.append([*trail[trail.index(nxt) :], nxt])
            elif nxt not in done:
                visit(nxt, [*trail, nxt])
        done.add(node)

    for start in sorted(graph):
        if start not in done:
            visit(start, [start])
    return cycles


def test_no_chain_of_imports_comes_back_to_where_it_started():
    graph = {_module_name(p): imports(p) - {_module_name(p)} for p in MODULES}
    cycles = find_cycles(graph)
    assert not cycles, "import circles: " + "; ".join(" → ".join(c) for c in cycles[:5])


def test_the_checks_see_an_upward_import_inside_a_function_and_a_circle(tmp_path):
    """The rules above, on made-up modules: they fail where they should."""
    source = tmp_path / "fake.py"
    source.write_text("def f():\n    from higgsbench.sweep.plan import BenchPlan\n")
    found = imports(source, "higgsbench.data.fake")
    assert "higgsbench.sweep.plan" in found
    assert layer("higgsbench.sweep.plan") < layer("higgsbench.data.fake")
    circle = {
        "higgsbench.spark.a": {"higgsbench.spark.b"},
        "higgsbench.spark.b": {"higgsbench.spark.a"},
    }
    assert find_cycles(circle) == [
        ["higgsbench.spark.a", "higgsbench.spark.b", "higgsbench.spark.a"]
    ]
    assert (
        find_cycles({"higgsbench.spark.a": {"higgsbench.spark"}, "higgsbench.spark": set()}) == []
    )
