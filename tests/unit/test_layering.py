"""The import graph of the product: dependencies run one way, and it has no circles.

Every ``import`` statement counts, wherever it stands: at the top, inside a function, under
``TYPE_CHECKING``. Product packages (meshd, discovery, governance, config_center, configkit) never import
the test tooling (integration, bench, tests); the leaves import only what docs/architecture.md's table allows them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: import name -> folder
PRODUCT = {"meshd": "meshd", "discovery": "discovery", "governance": "governance",
           "config_center": "config-center", "configkit": "configkit"}
TOOLING = ("integration", "bench", "tests")
#: what each leaf package may import of ours (besides itself)
LEAVES = {"configkit": set(), "discovery": {"configkit"}, "governance": {"configkit"},
          "config_center": {"configkit", "governance"}}


def _modules(package: str, folder: str) -> dict[str, Path]:
    out = {}
    for path in (ROOT / folder).rglob("*.py"):
        parts = [package, *path.relative_to(ROOT / folder).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


MODULES = {name: path for package, folder in PRODUCT.items() for name, path in _modules(package, folder).items()}


def imported_names(module: str, path: Path) -> set[str]:
    """Every dotted name an import statement of ``module`` names (``from a import b`` gives ``a`` and ``a.b``)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            submodules = {f"{source}.{alias.name}" for alias in node.names} & MODULES.keys()
            names.update(submodules or {source})
    return names


def _our_module(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


GRAPH = {m: {d for d in map(_our_module, imported_names(m, p)) if d and d != m} for m, p in MODULES.items()}


def test_the_walk_sees_imports_inside_functions_and_type_checking_blocks():
    assert "meshd.call" in GRAPH["meshd.cli"]                         # imported inside main()
    assert "meshd.config" in GRAPH["meshd.admin"]                     # under TYPE_CHECKING
    assert "discovery.zookeeper.source" in GRAPH["discovery.zookeeper.config"]


@pytest.mark.parametrize("module", sorted(MODULES))
def test_product_modules_do_not_import_test_tooling(module):
    bad = sorted(n for n in imported_names(module, MODULES[module]) if n.split(".")[0] in TOOLING)
    assert not bad, f"{MODULES[module].relative_to(ROOT)} imports test tooling: {bad}"


@pytest.mark.parametrize("leaf", sorted(LEAVES))
def test_leaf_packages_import_only_what_they_may(leaf):
    allowed = LEAVES[leaf] | {leaf}
    bad = sorted(f"{m} -> {d}" for m, deps in GRAPH.items() if m.split(".")[0] == leaf
                 for d in deps if d.split(".")[0] not in allowed)
    assert not bad, f"{leaf} may import {sorted(allowed)} only: {bad}"


def test_the_import_graph_has_no_circles():
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(v: str) -> None:                # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = [stack.pop()]
            while component[-1] != v:
                component.append(stack.pop())
            if len(component) > 1:
                circles.append(sorted(component))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    assert not circles, f"modules that import each other: {circles}"
