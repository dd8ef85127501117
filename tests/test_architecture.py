"""The import graph of the project's packages, read with ``ast`` from the tracked sources (nothing is
imported): no circles between files or between top-level packages, the layers of the data path
point one way, and no module reaches into another module's private (underscore) names."""
from __future__ import annotations

import ast
import subprocess
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("core", "models", "simulate", "featurize", "diagnose", "service", "cli")
# Code outside the packages that must also use only public names.
OTHER_CODE = ("bench", "experiments", "scripts")
# Top-level package -> the project packages it must never import.
FORBIDDEN = {
    "core": {"models", "simulate", "featurize", "diagnose", "service", "cli"},
    "models": {"simulate", "service", "cli"},
    "simulate": {"models", "service", "cli"},
    "featurize": {"service", "cli"},
    "diagnose": {"service", "cli"},
    "service": {"cli"},
}


def _tracked_sources(tops: tuple[str, ...]) -> dict[str, Path]:
    """Module name -> file for the tracked .py files under ``tops`` (``pkg/__init__.py`` is ``pkg``)."""
    try:
        listed = subprocess.run(["git", "ls-files", "--", *(f"{t}/*.py" for t in tops)], cwd=ROOT,
                                capture_output=True, text=True, check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        listed = [str(p.relative_to(ROOT)) for t in tops for p in (ROOT / t).rglob("*.py")]
    modules = {}
    for rel in listed:
        parts = Path(rel).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = ROOT / rel
    return modules


MODULES = _tracked_sources(PACKAGES)
OTHERS = _tracked_sources(OTHER_CODE)


def _imports(path: Path, known: dict[str, Path]) -> tuple[set[str], list[str]]:
    """(project modules the file imports, private names it takes from other modules)."""
    tree = ast.parse(path.read_text("utf-8"), str(path))
    this = next((m for m, p in known.items() if p == path), None)
    imported: set[str] = set()
    private: list[str] = []
    aliases: dict[str, str] = {}  # local name -> project module
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] in PACKAGES:
                    imported.add(a.name)
                    if a.asname:
                        aliases[a.asname] = a.name
                    else:
                        aliases[a.name.split(".")[0]] = a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] not in PACKAGES:
                continue
            for a in node.names:
                full = f"{node.module}.{a.name}"
                if full in MODULES:
                    imported.add(full)
                    aliases[a.asname or a.name] = full
                else:
                    imported.add(node.module)
                    if a.name.startswith("_") and not a.name.startswith("__") and node.module != this:
                        private.append(f"from {node.module} import {a.name}")
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            chain, value = [], node.value
            while isinstance(value, ast.Attribute):
                chain.append(value.attr)
                value = value.value
            if isinstance(value, ast.Name) and value.id in aliases:
                module = ".".join([aliases[value.id], *reversed(chain)])
                if module in MODULES and module != this:
                    private.append(f"{module}.{node.attr}")
    return {m for m in imported if m in MODULES or m.split(".")[0] in PACKAGES}, private


def _module_of(name: str) -> str:
    """The longest known module that ``name`` (a module or a name inside one) starts with."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name


def _graph() -> dict[str, set[str]]:
    graph = {}
    for module, path in MODULES.items():
        deps, _ = _imports(path, MODULES)
        # importing a.b.c also runs the __init__ of a and a.b, which are not edges of this file's design
        graph[module] = {_module_of(d) for d in deps} - {module, ""}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one member (Tarjan)."""
    index, low, on_stack, stack, out, counter = {}, {}, set(), [], [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_every_package_has_tracked_sources():
    for package in PACKAGES:
        assert package in MODULES, f"{package}/__init__.py is not tracked"


def test_no_import_circle_between_files():
    graph = _graph()
    # a package's __init__ that re-exports its modules is not part of a circle of theirs
    graph = {m: {d for d in deps if not (MODULES[d].name == "__init__.py" and m.startswith(d + "."))}
             for m, deps in graph.items()}
    assert _cycles(graph) == []


def test_no_import_circle_between_packages():
    packages = defaultdict(set)
    for module, deps in _graph().items():
        top = module.split(".")[0]
        packages[top] |= {d.split(".")[0] for d in deps} - {top}
    assert _cycles(dict(packages)) == []


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_layers_point_one_way(package):
    wrong = []
    for module, deps in _graph().items():
        if module.split(".")[0] == package:
            wrong += [f"{module} imports {d}" for d in sorted(deps) if d.split(".")[0] in FORBIDDEN[package]]
    assert wrong == []


def test_no_module_imports_another_modules_private_names():
    wrong = []
    for module, path in {**MODULES, **OTHERS}.items():
        _, private = _imports(path, {**MODULES, **OTHERS})
        wrong += [f"{path.relative_to(ROOT)}: {p}" for p in private]
    assert wrong == []
