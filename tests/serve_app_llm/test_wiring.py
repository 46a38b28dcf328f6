"""create_app serves both dialects over the context's router and model directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ember.config import load_config
from ember.serve_app import build_context, create_app
from ember.storage import Migrator


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = {"EMBER_HOME": str(tmp_path), "EMBER_SERVER_ALLOWED_HOSTS": "testserver"}
    context = build_context(load_config(None, settings))
    Migrator(context.database).upgrade()
    try:
        with TestClient(create_app(context), client=("127.0.0.1", 50000)) as test_client:
            yield test_client
    finally:
        context.database.dispose()


def test_create_app_serves_both_dialects(client: TestClient) -> None:
    listed = client.get("/v1/models").json()["data"]
    assert {"id": "default", "object": "model", "created": 0, "owned_by": "alias"} in listed
    tags = client.get("/api/tags").json()["models"]
    assert "default" in [tag["name"] for tag in tags]
    missing = client.post(
        "/v1/chat/completions",
        json={"model": "no-such-model", "messages": [{"role": "user", "content": "x"}]},
    )
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "provider_model_not_found"
    assert client.post("/api/show", json={"model": "no-such-model"}).status_code == 404
