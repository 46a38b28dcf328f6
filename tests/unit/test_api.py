"""The FastAPI app in-process: problem+json everywhere, request ids, collections, readiness.

The client connects from loopback while no token exists (the dev bypass); authentication has
its own suite in ``tests/auth``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from ember.serve_app import CheckResult, create_app
from tests.support.app import app_context

PROBLEM_KEYS = {"type", "title", "status", "detail", "code", "request_id"}
LOOPBACK = ("127.0.0.1", 50000)


@pytest.fixture
def app(tmp_path: Path) -> FastAPI:
    return create_app(app_context(tmp_path))


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False, client=LOOPBACK) as test_client:
        yield test_client


def assert_problem(response, status: int, code: str) -> dict:
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body.keys() >= PROBLEM_KEYS
    assert body["status"] == status and body["code"] == code
    assert body["type"] == f"urn:ember:error:{code}"
    assert body["request_id"] == response.headers["x-request-id"]
    assert "Traceback" not in response.text
    return body


def test_malformed_json_is_a_422_with_field_paths(client: TestClient) -> None:
    response = client.post(
        "/collections", content=b'{"name": ', headers={"content-type": "application/json"}
    )
    body = assert_problem(response, 422, "validation_failed")
    assert body["errors"][0]["type"] == "json_invalid"


def test_invalid_fields_are_listed_by_path(client: TestClient) -> None:
    response = client.post(
        "/collections", json={"name": "Not Valid!", "metadata": [], "surprise": 1}
    )
    body = assert_problem(response, 422, "validation_failed")
    paths = {error["path"] for error in body["errors"]}
    assert paths == {"body.name", "body.metadata", "body.surprise"}
    assert "body.name" in body["detail"]


def test_bad_query_parameter(client: TestClient) -> None:
    body = assert_problem(client.get("/collections?limit=0"), 422, "validation_failed")
    assert body["errors"][0]["path"] == "query.limit"


def test_unknown_route_and_method(client: TestClient) -> None:
    assert_problem(client.get("/no/such/route"), 404, "not_found")
    not_allowed = client.put("/health")
    assert_problem(not_allowed, 405, "method_not_allowed")
    assert not_allowed.headers["allow"] == "GET"


def test_collections_lifecycle(client: TestClient) -> None:
    created = client.post("/collections", json={"name": "papers", "metadata": {"a": 1}})
    assert created.status_code == 201
    assert created.json()["metadata"] == {"a": 1}
    assert_problem(client.post("/collections", json={"name": "papers"}), 409, "collection_exists")
    for name in ["b", "c"]:
        client.post("/collections", json={"name": name})
    page = client.get("/collections?limit=2").json()
    assert [c["name"] for c in page["items"]] == ["b", "c"] and page["next"] == "c"
    last = client.get(f"/collections?limit=2&after={page['next']}").json()
    assert [c["name"] for c in last["items"]] == ["papers"] and last["next"] is None
    assert client.get("/collections/papers").json()["id"] == created.json()["id"]
    assert client.delete("/collections/papers").status_code == 204
    assert_problem(client.get("/collections/papers"), 404, "collection_not_found")


def test_request_id_is_echoed_or_generated(client: TestClient) -> None:
    echoed = client.get("/health", headers={"X-Request-ID": "abc-123"})
    assert echoed.headers["x-request-id"] == "abc-123"
    generated = client.get("/health")
    other = client.get("/health")
    assert len(generated.headers["x-request-id"]) >= 16
    assert generated.headers["x-request-id"] != other.headers["x-request-id"]
    junk = client.get("/health", headers={"X-Request-ID": "has spaces\tand tabs"})
    assert junk.headers["x-request-id"] != "has spaces\tand tabs"


def test_unhandled_error_is_a_500_problem_without_trace(app: FastAPI, client: TestClient) -> None:
    @app.get("/explode")
    def explode() -> None:
        raise RuntimeError("secret internals")

    response = client.get("/explode", headers={"X-Request-ID": "boom-1"})
    body = assert_problem(response, 500, "internal")
    assert "secret internals" not in response.text
    assert body["request_id"] == "boom-1"


def test_a_cluster_service_that_is_gone_is_a_503_to_retry(app: FastAPI, client: TestClient) -> None:
    from ember.errors import ServiceUnavailable
    from ember.jobs.runner import EventsLost

    @app.get("/hub-gone")
    def hub_gone() -> None:
        raise EventsLost("the event hub is gone")

    @app.get("/registry-gone")
    def registry_gone() -> None:
        raise ServiceUnavailable("the model registry is not running right now")

    for path in ("/hub-gone", "/registry-gone"):
        response = client.get(path)
        body = assert_problem(response, 503, "service_unavailable")
        assert response.headers["retry-after"] == "5" and body["retry_after_s"] == 5


def test_ready_reports_every_check(app: FastAPI, client: TestClient) -> None:
    ready = client.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["checks"]["database"]["ok"] is True

    async def failing() -> CheckResult:
        return CheckResult(False, "model not warm")

    app.state.context.readiness.add("model", failing)
    body = assert_problem(client.get("/ready"), 503, "not_ready")
    assert "model: model not warm" in body["detail"]
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["model"] == {"ok": False, "detail": "model not warm"}
    assert client.get("/health").status_code == 200


def test_ready_fails_on_an_unmigrated_database(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    context = app_context(tmp_path, migrate=False)
    with TestClient(create_app(context)) as client:
        body = assert_problem(client.get("/ready"), 503, "not_ready")
    assert body["checks"]["database"] == {"ok": False, "detail": "failing"}
    assert "ember db upgrade" in caplog.text, "the operator reads why in the log"


def test_openapi_lists_the_routes(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/health", "/ready", "/collections", "/collections/{name}"} <= paths.keys()
