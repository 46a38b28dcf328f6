"""The CLI's import graph: ``main`` only assembles, nothing imports it back, no cycles."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO

CLI = REPO / "src" / "ember" / "cli"
PACKAGE = "ember.cli"
MAIN = f"{PACKAGE}.main"
# ``ember.cli`` itself re-exports ``app`` and ``main`` from ``main``: the one allowed importer.
MAY_IMPORT_MAIN = {f"{PACKAGE}.main", PACKAGE}


def _name(path: Path) -> str:
    return PACKAGE if path.stem == "__init__" else f"{PACKAGE}.{path.stem}"


MODULES = {_name(path): path for path in sorted(CLI.glob("*.py"))}


def _resolve(node: ast.ImportFrom) -> str:
    """The absolute module name of a ``from ... import``, relative ones included."""
    if node.level == 0:
        return node.module or ""
    base = PACKAGE.split(".")[: len(PACKAGE.split(".")) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _owner(name: str) -> str | None:
    """The module of ``ember.cli`` that importing ``name`` runs (the longest known prefix)."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in MODULES:
            return candidate
    return None


def imports(path: Path) -> set[str]:
    """The ``ember.cli`` modules that ``path`` imports, anywhere in it (function-local and
    ``TYPE_CHECKING`` imports too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = _resolve(node)
            # ``from ember.cli import x`` imports the submodule x if there is one, else it
            # takes x from the package's __init__ (which imports main).
            names = [f"{module}.{alias.name}" for alias in node.names]
        else:
            continue
        found.update(owner for owner in map(_owner, names) if owner is not None)
    found.discard(_name(path))
    return found


GRAPH = {name: imports(path) for name, path in MODULES.items()}


def test_the_graph_sees_the_modules() -> None:
    assert {MAIN, f"{PACKAGE}.common", f"{PACKAGE}.jobs"} <= GRAPH.keys()
    assert f"{PACKAGE}.common" in GRAPH[f"{PACKAGE}.jobs"]
    assert MAIN in GRAPH[PACKAGE]


@pytest.mark.parametrize("name", sorted(set(MODULES) - MAY_IMPORT_MAIN))
def test_no_command_module_imports_main(name: str) -> None:
    assert MAIN not in GRAPH[name], f"{name} imports {MAIN}: take it from ember.cli.common"
    assert PACKAGE not in GRAPH[name], f"{name} imports {PACKAGE}, which imports {MAIN}"


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (first module repeated last), or ``None``."""
    done: set[str] = set()
    path: list[str] = []

    def visit(name: str) -> list[str] | None:
        if name in path:
            return [*path[path.index(name) :], name]
        if name in done:
            return None
        path.append(name)
        for target in sorted(graph.get(name, ())):
            if found := visit(target):
                return found
        path.pop()
        done.add(name)
        return None

    for name in sorted(graph):
        if found := visit(name):
            return found
    return None


def test_the_cycle_finder_finds_one() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set(), "c": {"b"}}) is None


def test_no_import_cycle_in_the_cli() -> None:
    cycle = _cycle(GRAPH)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or ())
