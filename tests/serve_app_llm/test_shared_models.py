"""One caller cannot unload the models everyone shares.

ember's whole app over the real bundled Gemma 3 270M, hosted in this process and warmed as at
start. A caller holding only ``models:use`` sends Ollama's ``keep_alive: 0`` every way there is
(the bare unload request, and with a generate and a chat call) and a short ``keep_alive``: the
warm model stays loaded with no expiry, and ``/ready`` stays 200. An ``admin`` can still
unload it (and ``/ready`` says the warm model is gone).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ember.config import load_config
from ember.models import LocalModels, ModelRecord
from ember.serve_app import AppContext, build_context, create_app

REMOTE = ("203.0.113.7", 50000)
SETTINGS = {
    "EMBER_SERVER_ALLOWED_HOSTS": "testserver",
    "EMBER_AUTH_RATE_LIMIT_PER_S": "0",
    "EMBER_SERVER_PROBE_CACHE_S": "0",
}
SHORT = {"num_predict": 2, "temperature": 0}


@pytest.fixture
async def served(
    tmp_path: Path, gemma: ModelRecord, local_models: LocalModels
) -> AsyncIterator[tuple[httpx.AsyncClient, AppContext]]:
    """The app over the catalog's database (under ``tmp_path``) and the warmed model."""
    assert await local_models.registry.warm() == [gemma.name]
    config = load_config(None, {"EMBER_HOME": str(tmp_path), **SETTINGS})
    context = build_context(config, models=local_models)
    transport = httpx.ASGITransport(app=create_app(context), client=REMOTE)
    try:
        async with httpx.AsyncClient(
            transport=transport, base_url="http://testserver", timeout=120
        ) as client:
            yield client, context
    finally:
        await context.router.aclose()
        context.database.dispose()


async def _post(client: httpx.AsyncClient, token: str, path: str, body: dict[str, Any]) -> Any:
    response = await client.post(path, json=body, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    return response.json()


async def test_keep_alive_zero_from_a_member_leaves_the_warm_model_loaded(
    served: tuple[httpx.AsyncClient, AppContext], local_models: LocalModels, gemma: ModelRecord
) -> None:
    client, context = served
    _, member = context.tokens.create("app", "app", ["models:use"])
    _, admin = context.tokens.create("ops", "ops", ["admin"])
    assert (await client.get("/ready")).status_code == 200
    generate = {"model": "default", "stream": False, "options": SHORT}
    chat = {**generate, "messages": [{"role": "user", "content": "Hi"}]}
    unload = await _post(client, member, "/api/generate", {**generate, "keep_alive": 0})
    assert unload["done_reason"] == "load", "not unloaded"
    for path, body in [("/api/generate", {**generate, "prompt": "2+2="}), ("/api/chat", chat)]:
        for keep_alive in (0, "0s", "1s"):
            answered = await _post(client, member, path, {**body, "keep_alive": keep_alive})
            assert answered["done"] is True
    assert await local_models.registry.sweep() == []
    (resident,) = await local_models.loaded()
    assert resident.name == gemma.name and resident.expires_at is None, "no expiry was set"
    ps = await client.get("/api/ps", headers={"Authorization": f"Bearer {member}"})
    assert [m["model"] for m in ps.json()["models"]] == [gemma.name]
    assert (await client.get("/ready")).status_code == 200

    gone = await _post(client, admin, "/api/generate", {**generate, "keep_alive": 0})
    assert gone["done_reason"] == "unload"
    assert await local_models.loaded() == []
    assert (await client.get("/ready")).status_code == 503
