"""``POST /collections`` and the embedding model (issue 15): a collection records the model
the memory plane embeds with, and a create that names another model is refused instead of
being stored and silently ignored."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from ember.cli import app as cli_app
from ember.serve_app import AppContext, create_app
from tests.support.app import migrated_context

REMOTE = ("203.0.113.7", 50000)


@pytest.fixture
def context(tmp_path: Path) -> Iterator[AppContext]:
    with migrated_context(tmp_path / "home") as context:
        yield context


@pytest.fixture
def client(context: AppContext) -> TestClient:
    secret = context.tokens.create("writer", "writer", ["memory:read", "memory:write"])[1]
    client = TestClient(create_app(context), raise_server_exceptions=False, client=REMOTE)
    client.headers["Authorization"] = f"Bearer {secret}"
    return client


def test_a_model_that_is_not_the_configured_one_is_refused(
    context: AppContext, client: TestClient
) -> None:
    configured = context.memory.embedder.model_id
    refused = client.post(
        "/collections", json={"name": "kb", "embedding_model": "nonexistent-model"}
    )
    assert refused.status_code == 422, refused.text
    problem = refused.json()
    assert problem["code"] == "validation_failed"
    assert "nonexistent-model" in problem["detail"] and configured in problem["detail"]
    assert client.get("/collections/kb").status_code == 404, "nothing was created"


def test_a_collection_records_the_configured_model(
    context: AppContext, client: TestClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    configured = context.memory.embedder.model_id
    plain = client.post("/collections", json={"name": "plain"})
    assert plain.status_code == 201, plain.text
    assert plain.json()["embedding_model"] == configured
    named = client.post("/collections", json={"name": "named", "embedding_model": configured})
    assert named.status_code == 201, named.text
    assert named.json()["embedding_model"] == configured
    listed = client.get("/collections").json()["items"]
    assert {(c["name"], c["embedding_model"]) for c in listed} == {
        ("named", configured),
        ("plain", configured),
    }
    assert client.get("/collections/plain").json()["embedding_model"] == configured

    monkeypatch.setenv("EMBER_HOME", str(tmp_path / "home"))
    runner = CliRunner()
    created = runner.invoke(cli_app, ["collections", "create", "from-cli"])
    assert created.exit_code == 0, created.output
    shown = runner.invoke(cli_app, ["collections", "list"], env={"COLUMNS": "300"})
    assert shown.exit_code == 0, shown.output
    rows = {line.split()[1]: line for line in shown.stdout.splitlines() if line.startswith("│")}
    for name in ("plain", "named", "from-cli"):
        assert configured in rows[name], shown.stdout
