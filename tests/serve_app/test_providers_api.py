"""``GET /providers`` over HTTP, against a fake OpenAI server on 127.0.0.1: each provider
with its price and breaker (which opens after failures), the budgets that apply and the
rolling day's usage as each scope may see it; never a credential."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ember.auth import SqlWorkspaceRepository
from ember.config import load_config
from ember.serve_app import AppContext, build_context, create_app
from ember.services import memory_plane
from ember.storage import Database, Migrator
from tests.fakes.openai_fake import FakeOpenAIServer
from tests.support.app import TEST_HOST
from tests.support.embedders import HashEmbedder, WordTokenizer

REMOTE = ("203.0.113.7", 50000)
KEY = "sk-upstream-secret-1234"
URL_SECRET = "hunter2"
PRICE = {"prompt_per_1k_usd": 1.0, "completion_per_1k_usd": 2.0}


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(models=("gpt",), api_key=KEY) as server:
        yield server


@pytest.fixture
def context(tmp_path: Path, upstream: FakeOpenAIServer) -> Iterator[AppContext]:
    upstream.reset()
    instances = {
        "cloud": {"kind": "openai", "base_url": upstream.base_url, "api_key": KEY},
        "mirror": {
            "kind": "openai",
            "base_url": f"https://ci:{URL_SECRET}@mirror.example:8443/v1?token={URL_SECRET}#x",
            "api_key_env": "EMBER_TEST_MIRROR_KEY",
        },
        "local": {"kind": "ollama"},
    }
    settings = {
        "EMBER_HOME": str(tmp_path / "home"),
        **TEST_HOST,
        "EMBER_PROVIDERS_INSTANCES": json.dumps(instances),
        "EMBER_PROVIDERS_PRICES": json.dumps({"cloud": PRICE}),
        "EMBER_PROVIDERS_PRINCIPAL_BUDGETS": json.dumps(
            {"*": {"tokens_per_day": 100000}, "alice": {"cost_per_day_usd": 5.0}}
        ),
        "EMBER_PROVIDERS_WORKSPACE_BUDGETS": json.dumps({"team-b": {"tokens_per_day": 50000}}),
        "EMBER_PROVIDERS_PROVIDER_BUDGETS": json.dumps({"cloud": {"cost_per_day_usd": 50.0}}),
        "EMBER_ROUTER_DEFAULT_PROVIDER": "local",
        "EMBER_ROUTER_DEFAULT_EMBEDDING_PROVIDER": "",
        "EMBER_ROUTER_RETRY_ATTEMPTS": "1",
        "EMBER_ROUTER_BREAKER_FAILURES": "2",
        "EMBER_ROUTER_BREAKER_OPEN_S": "60",
    }
    config = load_config(None, settings)
    database = Database.from_config(config)
    Migrator(database).upgrade()
    memory = memory_plane(config, database, embedder=(HashEmbedder(), WordTokenizer()))
    context = build_context(config, memory=memory)
    SqlWorkspaceRepository(context.database).create("team-b")
    try:
        yield context
    finally:
        memory.close()
        context.database.dispose()
        database.dispose()


@pytest.fixture
def client(context: AppContext) -> Iterator[TestClient]:
    """One app for the whole test (its lifespan closes the shared router on the way out), so
    the usage writer's flushes run on its loop."""
    app = create_app(context)
    with TestClient(app, raise_server_exceptions=False, client=REMOTE) as client:
        yield client


def bearer(
    context: AppContext, name: str, *scopes: str, workspace: str = "default"
) -> dict[str, str]:
    secret = context.tokens.create(name, name, list(scopes), workspace=workspace)[1]
    return {"Authorization": f"Bearer {secret}"}


def providers(client: TestClient, auth: dict[str, str]) -> dict[str, Any]:
    answer = client.get("/providers", headers=auth)
    assert answer.status_code == 200, answer.text
    for secret in (KEY, URL_SECRET, "EMBER_TEST_MIRROR_KEY", "api_key"):
        assert secret not in answer.text, f"{secret!r} leaked"
    body: dict[str, Any] = answer.json()
    return body


def by_name(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in body["providers"]}


def chat(client: TestClient, auth: dict[str, str], text: str = "hello there world") -> Any:
    return client.post(
        "/v1/chat/completions",
        headers=auth,
        json={"model": "cloud/gpt", "messages": [{"role": "user", "content": text}]},
    )


def usage_when(
    client: TestClient, auth: dict[str, str], ready: int, timeout_s: float = 10.0
) -> dict[str, Any]:
    """``/providers`` once its usage rows count ``ready`` requests in all (rows are written
    off the call's path, a flush later)."""
    deadline = time.monotonic() + timeout_s
    while True:
        body = providers(client, auth)
        if sum(row["requests"] for row in body["usage"]) >= ready:
            return body
        assert time.monotonic() < deadline, body["usage"]
        time.sleep(0.05)


def test_providers_prices_and_urls_without_credentials(
    context: AppContext, client: TestClient
) -> None:
    body = providers(client, bearer(context, "alice", "models:use"))
    found = by_name(body)
    assert sorted(found) == ["cloud", "local", "mirror"]
    cloud, mirror, local = found["cloud"], found["mirror"], found["local"]
    assert cloud["kind"] == "openai" and cloud["base_url"].startswith("http://127.0.0.1:")
    assert cloud["local"] is True and cloud["price"] == PRICE
    assert mirror["base_url"] == "https://mirror.example:8443/v1" and mirror["local"] is False
    assert local == {
        "name": "local",
        "kind": "ollama",
        "base_url": None,
        "local": True,
        "price": {"prompt_per_1k_usd": 0.0, "completion_per_1k_usd": 0.0},
        "breaker": {"state": "closed", "retry_in_s": 0.0},
    }
    assert body["usage"] == []


def test_a_breaker_opens_after_failures(
    context: AppContext, client: TestClient, upstream: FakeOpenAIServer
) -> None:
    alice = bearer(context, "alice", "models:use")
    assert chat(client, alice).status_code == 200
    upstream.fail_next(503, count=2)
    for _ in range(2):
        failed = chat(client, alice)
        assert failed.status_code == 503, failed.text
    body = providers(client, alice)
    breaker = by_name(body)["cloud"]["breaker"]
    assert breaker["state"] == "open"
    assert 0 < breaker["retry_in_s"] <= 60
    assert by_name(body)["local"]["breaker"]["state"] == "closed"
    calls = len(upstream.calls)
    assert chat(client, alice).status_code == 503
    assert len(upstream.calls) == calls, "an open breaker sends nothing"


def test_usage_after_a_call_with_its_cost_and_budgets(
    context: AppContext, client: TestClient
) -> None:
    alice = bearer(context, "alice", "models:use")
    answer = chat(client, alice)
    assert answer.status_code == 200, answer.text
    used = answer.json()["usage"]
    body = usage_when(client, alice, 1)
    assert body["usage"] == [
        {
            "workspace": "default",
            "principal": "alice",
            "provider": "cloud",
            "requests": 1,
            "prompt_tokens": used["prompt_tokens"],
            "completion_tokens": used["completion_tokens"],
            "cost_usd": pytest.approx(
                (used["prompt_tokens"] * 1.0 + used["completion_tokens"] * 2.0) / 1000
            ),
        }
    ]
    spent = {
        "requests": 1,
        "tokens": used["total_tokens"],
        "cost_usd": pytest.approx(body["usage"][0]["cost_usd"]),
    }
    budgets = {(b["scope"], b["name"]): b for b in body["budgets"]}
    assert sorted(budgets) == [("principal", "alice"), ("provider", "cloud")]
    assert budgets["principal", "alice"] == {
        "scope": "principal",
        "name": "alice",
        "rule": "alice",
        "tokens_per_day": None,
        "cost_per_day_usd": 5.0,
        "spent": spent,
    }
    assert budgets["provider", "cloud"]["cost_per_day_usd"] == 50.0
    assert budgets["provider", "cloud"]["spent"] == spent


def test_each_scope_sees_what_it_may(context: AppContext, client: TestClient) -> None:
    alice = bearer(context, "alice", "models:use")
    bob = bearer(context, "bob", "models:use")
    carol = bearer(context, "carol", "models:use", workspace="team-b")
    admin = bearer(context, "root", "admin")
    operator = bearer(context, "op", "cluster:admin")
    for auth in (alice, bob, bob, carol):
        assert chat(client, auth).status_code == 200
    usage_when(client, operator, 4)

    def rows(auth: dict[str, str]) -> set[tuple[str, str, int]]:
        return {
            (r["workspace"], r["principal"], r["requests"])
            for r in providers(client, auth)["usage"]
        }

    def budgets(auth: dict[str, str]) -> set[tuple[str, str, str]]:
        return {(b["scope"], b["name"], b["rule"]) for b in providers(client, auth)["budgets"]}

    assert rows(alice) == {("default", "alice", 1)}
    assert rows(bob) == {("default", "bob", 2)}
    assert rows(carol) == {("team-b", "carol", 1)}
    assert rows(admin) == {("default", "alice", 1), ("default", "bob", 2)}
    assert rows(operator) == {
        ("default", "alice", 1),
        ("default", "bob", 2),
        ("team-b", "carol", 1),
    }
    assert budgets(bob) == {("principal", "bob", "*"), ("provider", "cloud", "cloud")}
    assert budgets(carol) == {
        ("principal", "carol", "*"),
        ("workspace", "team-b", "team-b"),
        ("provider", "cloud", "cloud"),
    }
    assert budgets(admin) == {
        ("principal", "alice", "alice"),
        ("principal", "bob", "*"),
        ("principal", "root", "*"),
        ("provider", "cloud", "cloud"),
    }
    assert {
        ("principal", "carol", "*"),
        ("workspace", "team-b", "team-b"),
        ("principal", "alice", "alice"),
    } <= budgets(operator)
    assert {len(providers(client, auth)["providers"]) for auth in (alice, carol, admin)} == {3}
    refused = client.get("/providers", headers=bearer(context, "reader", "memory:read"))
    assert refused.status_code == 403 and refused.json()["required_scope"] == "models:use"
    assert client.get("/providers").status_code == 401
