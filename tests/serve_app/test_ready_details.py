"""``/ready`` is public, so it tells a stranger only which checks pass.

A check's detail can hold a database URL, a driver's message or an upstream address; the
attacker probes ``/ready`` from a remote address without a token, with a token that lacks
``admin``, and with a bad token. Only a token holding ``admin`` (or the loopback dev bypass)
reads the details.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from ember.serve_app import AppContext, CheckResult, create_app
from tests.support.app import migrated_context

REMOTE = ("203.0.113.7", 50000)
LOOPBACK = ("127.0.0.1", 50000)
SECRET_URL = "postgresql://ember:hunter2@db.internal:5432/ember"
DRIVER = f'psycopg.OperationalError: connection to "{SECRET_URL}" failed: FATAL: password'


@pytest.fixture
def context(tmp_path: Path) -> Iterator[AppContext]:
    with migrated_context(tmp_path) as context:
        yield context


@pytest.fixture
def app(context: AppContext) -> FastAPI:
    return create_app(context)


def get_ready(app: FastAPI, token: str | None = None, address: tuple[str, int] = REMOTE) -> Any:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    with TestClient(app, raise_server_exceptions=False, client=address) as client:
        return client.get("/ready", headers=headers)


def test_a_passing_ready_names_its_checks_only(context: AppContext, app: FastAPI) -> None:
    context.tokens.create("ops", "ops", ["admin"])
    response = get_ready(app)
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready" and "database" in body["checks"]
    assert all(check == {"ok": True, "detail": "ok"} for check in body["checks"].values())
    assert "sqlite" not in response.text and "revision" not in response.text


def test_a_failing_check_does_not_show_its_detail_to_strangers(
    context: AppContext, app: FastAPI
) -> None:
    async def broken() -> CheckResult:
        raise RuntimeError(DRIVER)

    context.readiness.add("vectors", broken)
    _, admin = context.tokens.create("ops", "ops", ["admin"])
    _, member = context.tokens.create("ci", "ci", ["memory:read", "jobs:write"])
    for token in (None, member, "ember_not-a-token", "not-even-ember"):
        response = get_ready(app, token)
        assert response.status_code == 503 and response.json()["code"] == "not_ready"
        assert "hunter2" not in response.text and "db.internal" not in response.text, token
        body = response.json()
        assert body["detail"] == "not ready: vectors: failing"
        assert body["checks"]["vectors"] == {"ok": False, "detail": "failing"}
        assert body["checks"]["database"] == {"ok": True, "detail": "ok"}
    privileged = get_ready(app, admin)
    assert privileged.status_code == 503
    assert privileged.json()["checks"]["vectors"] == {"ok": False, "detail": DRIVER}
    assert "at revision" in privileged.json()["checks"]["database"]["detail"]


def test_the_loopback_dev_bypass_reads_the_details(app: FastAPI) -> None:
    response = get_ready(app, address=LOOPBACK)
    assert response.status_code == 200
    assert "at revision" in response.json()["checks"]["database"]["detail"]


def test_once_tokens_exist_loopback_without_one_gets_no_details(
    context: AppContext, app: FastAPI
) -> None:
    context.tokens.create("ops", "ops", ["admin"])
    for _ in range(5):
        response = get_ready(app, address=LOOPBACK)
        assert response.status_code == 200, "a probe is never refused"
        assert response.json()["checks"]["database"] == {"ok": True, "detail": "ok"}
