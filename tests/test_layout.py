"""House rules a machine can check: the Ray line, flat exports, no stubs."""

from __future__ import annotations

import ast
import importlib
import pkgutil

import pytest

import ember
from tests.conftest import REPO

SRC = REPO / "src" / "ember"
RAY_ALLOWED = {"actors", "serve_app", "pipelines", "cluster"}


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
