"""Imports point down: cli → train → engines and results → contract, network, metrics, data.

Every import of every module counts, those inside functions too (engines import their heavy
dependencies lazily, and so could they import something above them)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "app" / "higgsbench"
ABOVE_ENGINES = ("higgsbench.train", "higgsbench.bench", "higgsbench.cli")
ABOVE_RESULTS = ("higgsbench.engines", *ABOVE_ENGINES)
ABOVE_CONTRACT = ("higgsbench.results", *ABOVE_RESULTS)
# module (or package) → what it must never import
RULES = {
    "higgsbench.contract": ABOVE_CONTRACT,
    "higgsbench.network": ABOVE_CONTRACT,
    "higgsbench.metrics": ABOVE_CONTRACT,
    "higgsbench.data": ABOVE_CONTRACT,
    "higgsbench.results": ABOVE_RESULTS,
    "higgsbench.engines": ABOVE_ENGINES,
    "higgsbench.train": ("higgsbench.bench", "higgsbench.cli"),
    "higgsbench.bench": ("higgsbench.cli",),
    "higgsbench.atomic": ("higgsbench.",),  # the bottom: the standard library only
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every module ``path`` imports, anywhere in it, as absolute names."""
    name = _module_name(path)
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
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix if prefix.endswith(".") else prefix + ".")


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_the_rules_name_modules_that_exist():
    names = {_module_name(p) for p in MODULES} | {_module_name(p.parent) for p in MODULES}
    for module, forbidden in RULES.items():
        assert module in names, module
        for target in forbidden:
            assert target.endswith(".") or target in names, target


@pytest.mark.parametrize("path", MODULES, ids=lambda p: _module_name(p))
def test_nothing_imports_what_is_above_it(path):
    name = _module_name(path)
    for module, forbidden in RULES.items():
        if not _within(name, module):
            continue
        wrong = sorted(
            i for i in imports(path) for f in forbidden if _within(i, f) and not _within(i, module)
        )
        assert not wrong, f"{name} imports {wrong}, which sit above it"
