"""The layers of docs/architecture.md: no import cycle inside any package, and a torch-free runtime.

lint-imports (`.ci/run`, [tool.importlinter] in pyproject.toml) checks that imports point down between
packages; these tests check what it does not: cycles among the modules of one package, and what
`import runtime` actually loads.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("runtime", "training", "export", "benchmarks", "dtvnet")


def module_cycles(graph: grimp.ImportGraph, package: str) -> list[list[str]]:
    """The strongly connected groups of more than one module inside `package` (Tarjan), sorted."""
    modules = sorted(m for m in graph.modules if m == package or m.startswith(package + "."))
    inside = set(modules)
    edges = {m: sorted(inside & graph.find_modules_directly_imported_by(m)) for m in modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for other in edges[module]:
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in on_stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for module in modules:
        if module not in index:
            visit(module)
    return sorted(groups)


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph(*PACKAGES, cache_dir=None)


def test_cycles_are_found(graph: grimp.ImportGraph):
    """The finder itself: a cycle added to the graph (and taken out again) is reported."""
    assert graph.direct_import_exists(importer="runtime.generator", imported="runtime.errors")
    graph.add_import(importer="runtime.errors", imported="runtime.generator")
    try:
        found = module_cycles(graph, "runtime")
    finally:
        graph.remove_import(importer="runtime.errors", imported="runtime.generator")
    assert any({"runtime.errors", "runtime.generator"} <= set(group) for group in found)
    assert module_cycles(graph, "runtime") == []


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_cycle_inside_a_package(graph: grimp.ImportGraph, package: str):
    assert module_cycles(graph, package) == []


def test_import_runtime_loads_no_torch_training_or_export():
    code = "import runtime, sys; assert not {'torch', 'training', 'export'} & set(sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr


def test_the_contract_covers_every_package():
    """The import-linter layers name every top-level package this project installs."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    assert sorted(config["root_packages"]) == sorted(PACKAGES)
    (layers,) = [c["layers"] for c in config["contracts"] if c["type"] == "layers"]
    named = {p.strip() for layer in layers for p in layer.split("|")}
    assert named == set(PACKAGES)
