"""The docs cover every setting, variable, error code, CLI command and route."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import typer.main

from ember.auth import Scope
from ember.cli import app as cli_app
from ember.config import environment_variables
from ember.errors import all_error_classes
from tests.conftest import REPO

DOCS = REPO / "docs"


def read(name: str) -> str:
    return (DOCS / name).read_text()


def test_settings_table_and_env_example_are_generated_from_the_models() -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "config_reference.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(("name", "path"), sorted(environment_variables().items()))
def test_setting_is_in_the_docs(name: str, path: tuple[str, ...]) -> None:
    assert f"| `{'.'.join(path)}` | `{name}` |" in read("configuration.md")


@pytest.mark.parametrize("cls", all_error_classes(), ids=lambda cls: cls.code)
def test_error_code_is_documented(cls: type) -> None:
    rows = [line for line in read("errors.md").splitlines() if line.startswith(f"| `{cls.code}` |")]
    assert len(rows) == 1, f"{cls.code} needs exactly one row in docs/errors.md"
    assert f"| {cls.status} |" in rows[0]


def _commands(group: typer.Typer, prefix: str = "") -> list[str]:
    click_group = typer.main.get_command(group)
    names: list[str] = []
    for name, command in click_group.commands.items():
        if hasattr(command, "commands"):
            names.extend(f"{prefix}{name} {sub}" for sub in command.commands)
        else:
            names.append(f"{prefix}{name}")
    return names


@pytest.mark.parametrize("command", _commands(cli_app))
def test_cli_command_is_documented(command: str) -> None:
    assert f"## `ember {command}" in read("cli.md")


def test_routes_are_documented(tmp_path) -> None:
    from ember.config import load_config
    from ember.serve_app import build_context, create_app

    app = create_app(build_context(load_config(None, {"EMBER_HOME": str(tmp_path)})))
    documented = set(
        re.findall(r"^\| (GET|POST|PUT|PATCH|DELETE) \| `([^`]+)` \|", read("api.md"), re.M)
    )
    served = {
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        for method in operations
    }
    assert served == documented


def test_route_scopes_are_documented(tmp_path) -> None:
    from ember.config import load_config
    from ember.serve_app import build_context, create_app
    from ember.serve_app.auth import route_access

    app = create_app(build_context(load_config(None, {"EMBER_HOME": str(tmp_path)})))
    documented = {
        (method, path): scope
        for method, path, scope in re.findall(
            r"^\| (GET|POST|PUT|PATCH|DELETE) \| `([^`]+)` \| ([^|]+?) \|", read("api.md"), re.M
        )
    }
    served = {
        (method, route.path): " ".join(f"`{scope}`" for scope in sorted(route.scopes)) or "public"
        for route in route_access(app)
        for method in route.methods
    }
    assert documented, "docs/api.md lists no routes"
    for key, scope in documented.items():
        assert served[key] == scope, f"{key}: docs say {scope}, the route needs {served[key]}"


@pytest.mark.parametrize("scope", [scope.value for scope in Scope])
def test_scope_is_documented(scope: str) -> None:
    assert f"| `{scope}` |" in read("api.md")


def test_docs_links_resolve() -> None:
    for page in [REPO / "README.md", REPO / "CONTRIBUTING.md", *DOCS.glob("*.md")]:
        for target in re.findall(r"\]\(([^)#:]+)\)", page.read_text()):
            assert (page.parent / target).exists(), f"{page.name} links to missing {target}"


def test_readme_starts_with_the_two_commands() -> None:
    lines = (REPO / "README.md").read_text().splitlines()
    block = lines[lines.index("```") + 1 : lines.index("```", lines.index("```") + 1)]
    assert [line.split()[0:2] for line in block] == [["make", "up"], ["make", "test"]]


def test_job_kinds_are_documented(tmp_path) -> None:
    from ember.config import load_config
    from ember.services import Services

    config = load_config(None, {"EMBER_HOME": str(tmp_path)})
    kinds = Services.build(config).kinds.names()
    documented = set(re.findall(r"^\| `([a-z_]+)` \| `\{", read("jobs.md"), re.M))
    assert set(kinds) == documented
