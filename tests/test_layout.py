"""House rules a machine can check: the layers (which package may import which), no cycles
between packages, the Ray line, flat exports.

``ALLOWED`` is the architecture: each package of ``ember`` (a top-level module counts as
one) and the packages it may import. ``docs/architecture.md`` draws the same table; a test
keeps the two in step. To add an edge, add it here and there, and keep the table acyclic.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
from collections.abc import Mapping
from pathlib import Path

import pytest

import ember
from tests.conftest import REPO

SRC = REPO / "src" / "ember"
RAY_ALLOWED = {"actors", "serve_app", "pipelines", "cluster"}

BASE = {"errors", "_lazy", "chat", "filters", "config", "observability", "placement"}
CORE = BASE | {
    "storage",
    "vectors",
    "sandbox",
    "vm",
    "auth",
    "models",
    "providers",
    "memory",
    "agents",
    "jobs",
}
ALLOWED: dict[str, set[str]] = {
    # base: vocabularies and config, nothing else of ember
    "errors": set(),
    "_lazy": set(),
    "chat": set(),
    "ui": set(),  # the web UI's built assets: no code
    "observability": {"errors", "config"},
    "placement": {"config"},
    "filters": {"errors"},
    "config": {"errors"},
    # durable state, then the adapters over it
    "storage": {"errors", "config", "filters", "observability"},
    "vectors": {"errors", "_lazy", "filters"},
    "sandbox": {"errors", "observability"},
    "vm": {"errors", "config", "observability", "sandbox", "storage"},
    "auth": {"errors", "config", "storage"},
    "models": {"errors", "chat", "config", "observability", "placement", "storage"},
    "providers": {"errors", "_lazy", "chat", "config", "models", "observability", "storage"},
    "memory": {"errors", "config", "filters", "observability", "providers", "storage", "vectors"},
    "agents": {
        "errors",
        "auth",
        "chat",
        "memory",
        "observability",
        "providers",
        "sandbox",
        "storage",
    },
    "jobs": {
        "errors",
        "agents",
        "auth",
        "chat",
        "config",
        "filters",
        "memory",
        "observability",
        "providers",
        "sandbox",
        "storage",
        "vm",
    },
    # contract suites, and the composition root over everything below the Ray line
    "testing": CORE,
    "services": CORE,
    # the Ray line: only these import ray
    "pipelines": CORE | {"services"},
    "actors": CORE | {"services", "pipelines"},
    "serve_app": CORE | {"services", "actors", "ui", "__init__"},
    "cluster": CORE | {"services", "actors", "serve_app"},
    # entry points
    "cli": CORE | {"services", "pipelines", "actors", "serve_app", "cluster", "__init__"},
    "__main__": {"cli"},
}
"""Package -> the packages it may import (``__init__`` is ``import ember`` itself)."""


def _package_imports(root: Path) -> dict[str, dict[str, list[str]]]:
    """Package -> imported package -> the files that import it (function-local imports and
    imports under ``TYPE_CHECKING`` included: both are edges of the design)."""
    found: dict[str, dict[str, list[str]]] = {}
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root)
        package = relative.parts[0].removesuffix(".py")
        if package == "__init__":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            modules: list[str] = []
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                modules = [node.module]
            elif isinstance(node, ast.ImportFrom) and node.level:
                modules = ["ember." + ".".join(relative.parts[:1])]
            for module in modules:
                parts = module.split(".")
                if parts[0] != "ember":
                    continue
                target = parts[1] if len(parts) > 1 else "__init__"
                if target != package:
                    found.setdefault(package, {}).setdefault(target, []).append(str(relative))
    return found


def _cycle(table: Mapping[str, set[str]]) -> list[str] | None:
    """A cycle of ``table``'s edges, or ``None``."""
    state: dict[str, int] = {}
    trail: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        trail.append(node)
        for nxt in sorted(table.get(node, ())):
            if state.get(nxt) == 1:
                return [*trail[trail.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)) is not None:
                return found
        trail.pop()
        state[node] = 2
        return None

    for node in sorted(table):
        if node not in state and (found := visit(node)) is not None:
            return found
    return None


def _violations(
    imports: Mapping[str, Mapping[str, list[str]]], table: Mapping[str, set[str]]
) -> list[str]:
    return [
        f"{package} -> {target} ({', '.join(sorted(set(files)))})"
        for package, targets in sorted(imports.items())
        for target, files in sorted(targets.items())
        if target not in table.get(package, set())
    ]


def test_every_package_has_a_row() -> None:
    packages = {path.name.removesuffix(".py") for path in SRC.iterdir()}
    packages -= {"__init__", "__pycache__", "py.typed"}
    assert packages == set(ALLOWED)


def test_the_table_has_no_cycle() -> None:
    assert _cycle(ALLOWED) is None


def test_every_import_is_in_the_table() -> None:
    assert _violations(_package_imports(SRC), ALLOWED) == []


def test_an_upward_import_is_caught() -> None:
    imports = {"storage": {"serve_app": ["storage/x.py"]}, "serve_app": {"storage": ["a.py"]}}
    assert _violations(imports, ALLOWED) == ["storage -> serve_app (storage/x.py)"]
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_the_architecture_page_draws_the_table() -> None:
    page = (REPO / "docs" / "architecture.md").read_text()
    rows = dict(re.findall(r"^\| `([a-z_]+)` \| ([^|]*) \|", page, re.M))
    drawn = {package: set(re.findall(r"`([a-z_]+)`", targets)) for package, targets in rows.items()}
    assert drawn == {package: set(targets) for package, targets in ALLOWED.items()}


def _imports(path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("path", sorted(SRC.rglob("*.py")), ids=lambda p: str(p.relative_to(SRC)))
def test_ray_stays_above_the_line(path) -> None:
    package = path.relative_to(SRC).parts[0]
    if package not in RAY_ALLOWED:
        assert "ray" not in _imports(path)


def _packages() -> list[str]:
    names = ["ember"]
    for info in pkgutil.walk_packages(ember.__path__, "ember."):
        if info.ispkg and ".migrations" not in info.name:
            names.append(info.name)
    return names


@pytest.mark.parametrize("name", _packages())
def test_package_exports_exist(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert exported, f"{name} needs a flat __all__"
    for symbol in exported:
        assert hasattr(module, symbol), f"{name}.__all__ names missing {symbol}"


def test_core_does_not_import_ray_at_runtime() -> None:
    import subprocess
    import sys

    code = (
        "import sys, ember.config, ember.storage, ember.errors, ember.observability, "
        "ember.serve_app; print('ray' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
