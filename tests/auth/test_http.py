"""Authentication over HTTP in-process: 401, 403, 429, the loopback bypass, audit, OpenAPI."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import pytest
from fastapi import Depends, FastAPI, WebSocket
from fastapi.testclient import TestClient
from starlette.exceptions import WebSocketException
from starlette.testclient import WebSocketDenialResponse

from ember.auth import Authenticator, Principal, RateLimiter, Scope
from ember.serve_app import AppContext, create_app
from ember.serve_app.auth import PUBLIC_PATHS, is_loopback, require, route_access
from tests.support.app import migrated_context
from tests.support.clock import FakeClock

LOOPBACK = ("127.0.0.1", 50000)
REMOTE = ("203.0.113.7", 50000)


@pytest.fixture
def context(tmp_path: Path) -> Iterator[AppContext]:
    with migrated_context(tmp_path) as context:
        yield context


@pytest.fixture
def app(context: AppContext) -> FastAPI:
    return create_app(context)


def client(app: FastAPI, address: tuple[str, int] = REMOTE) -> TestClient:
    return TestClient(app, raise_server_exceptions=False, client=address)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def token(context: AppContext, *scopes: str, principal: str = "ci") -> str:
    return context.tokens.create(principal, principal, list(scopes))[1]


def assert_problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["code"] == code and body["status"] == status
    assert body["request_id"] == response.headers["x-request-id"]
    return body


def test_a_remote_client_without_a_token_is_unauthorized(app: FastAPI) -> None:
    response = client(app).get("/collections")
    body = assert_problem(response, 401, "unauthorized")
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert "Authorization: Bearer" in body["detail"]
    assert_problem(client(app).post("/collections", json={"name": "x"}), 401, "unauthorized")


def test_probes_and_docs_are_public(app: FastAPI) -> None:
    remote = client(app)
    for path in ["/health", "/ready", "/openapi.json", "/docs", "/docs/assets/swagger-ui.css"]:
        assert remote.get(path).status_code == 200, path


@pytest.mark.parametrize(
    "header",
    ["Bearer ember_not-a-token", "Basic dXNlcjpwYXNz", "Bearer", "Bearer  ", "ember_x"],
)
def test_bad_credentials_are_unauthorized(context: AppContext, app: FastAPI, header: str) -> None:
    token(context, "admin")
    for address in [REMOTE, LOOPBACK]:
        response = client(app, address).get("/collections", headers={"Authorization": header})
        assert_problem(response, 401, "unauthorized")
        assert response.headers["www-authenticate"].startswith("Bearer")


def test_a_revoked_token_is_unauthorized_at_once(context: AppContext, app: FastAPI) -> None:
    record, secret = context.tokens.create("ci", "ci", ["memory:read"])
    remote = client(app)
    assert remote.get("/collections", headers=bearer(secret)).status_code == 200
    context.tokens.revoke(record.id)
    body = assert_problem(remote.get("/collections", headers=bearer(secret)), 401, "unauthorized")
    assert body["detail"] == "API token revoked"


def test_a_token_without_the_scope_is_forbidden(context: AppContext, app: FastAPI) -> None:
    remote = client(app)
    reader = bearer(token(context, "memory:read", "jobs:write"))
    assert remote.get("/collections", headers=reader).status_code == 200
    body = assert_problem(
        remote.post("/collections", json={"name": "x"}, headers=reader), 403, "forbidden"
    )
    assert body["required_scope"] == "memory:write"
    assert "'memory:write'" in body["detail"] and "jobs:write, memory:read" in body["detail"]
    assert_problem(remote.delete("/collections/x", headers=reader), 403, "forbidden")
    assert_problem(
        remote.post("/collections/x/documents", json={"documents": []}, headers=reader),
        403,
        "forbidden",
    )
    writer = bearer(token(context, "memory:write", principal="writer"))
    assert remote.post("/collections", json={"name": "x"}, headers=writer).status_code == 201
    assert_problem(remote.get("/collections", headers=writer), 403, "forbidden")
    assert_problem(
        remote.post("/collections/x/search", json={"query": "q"}, headers=writer),
        403,
        "forbidden",
    )


def test_admin_grants_every_scope(context: AppContext, app: FastAPI) -> None:
    remote = client(app)
    admin = bearer(token(context, "admin"))
    assert remote.post("/collections", json={"name": "x"}, headers=admin).status_code == 201
    assert remote.get("/collections/x", headers=admin).status_code == 200
    assert remote.delete("/collections/x", headers=admin).status_code == 204


def test_loopback_is_let_in_only_until_a_token_is_created(
    context: AppContext, app: FastAPI
) -> None:
    local = client(app, LOOPBACK)
    assert local.post("/collections", json={"name": "x"}).status_code == 201
    assert_problem(client(app).get("/collections"), 401, "unauthorized")
    record, secret = context.tokens.create("ci", "ci", ["memory:read"])
    body = assert_problem(local.get("/collections"), 401, "unauthorized")
    assert "API tokens exist" in body["detail"]
    assert local.get("/collections", headers=bearer(secret)).status_code == 200
    context.tokens.revoke(record.id)
    assert_problem(local.get("/collections"), 401, "unauthorized")


def test_the_bypass_comes_back_after_the_last_token_only_when_configured(
    tmp_path: Path,
) -> None:
    with migrated_context(tmp_path, EMBER_AUTH_LOOPBACK_AFTER_TOKENS="true") as context:
        local = client(create_app(context), LOOPBACK)
        record, _ = context.tokens.create("ci", "ci", ["memory:read"])
        assert_problem(local.get("/collections"), 401, "unauthorized")
        context.tokens.revoke(record.id)
        assert local.get("/collections").status_code == 200


def test_ipv6_loopback_and_mapped_addresses() -> None:
    assert is_loopback("::1") and is_loopback("127.8.9.10") and is_loopback("::ffff:127.0.0.1")
    for host in [None, "", "testclient", "10.0.0.1", "::ffff:10.0.0.1", "fe80::1", "localhost"]:
        assert not is_loopback(host)


def test_the_bypass_can_be_turned_off(tmp_path: Path) -> None:
    with migrated_context(tmp_path, EMBER_AUTH_LOOPBACK_WITHOUT_TOKENS="false") as context:
        app = create_app(context)
        assert_problem(client(app, LOOPBACK).get("/collections"), 401, "unauthorized")
        assert client(app, LOOPBACK).get("/health").status_code == 200


def test_over_the_burst_is_429_with_retry_after(context: AppContext) -> None:
    clock = FakeClock(0.0)
    limiter = RateLimiter(0.5, 3, clock=clock)
    app = create_app(dataclasses.replace(context, auth=Authenticator(context.tokens, limiter)))
    remote = client(app)
    first, second = (
        bearer(token(context, "memory:read")),
        bearer(token(context, "admin", principal="b")),
    )
    for _ in range(3):
        assert remote.get("/collections", headers=first).status_code == 200
    response = remote.get("/collections", headers=first)
    body = assert_problem(response, 429, "rate_limited")
    assert response.headers["retry-after"] == "2" and body["retry_after_s"] == 2
    assert_problem(
        remote.post("/collections", json={"name": "x"}, headers=first), 429, "rate_limited"
    )
    assert remote.get("/collections", headers=second).status_code == 200
    assert remote.get("/health").status_code == 200
    clock.now += 2
    assert remote.get("/collections", headers=first).status_code == 200


def test_collection_writes_are_audited_with_principal_and_request_id(
    context: AppContext, app: FastAPI
) -> None:
    remote = client(app)
    writer = {**bearer(token(context, "memory:write", principal="alice")), "X-Request-ID": "r-1"}
    created = remote.post("/collections", json={"name": "kb"}, headers=writer)
    assert created.status_code == 201
    assert remote.post("/collections", json={"name": "kb"}, headers=writer).status_code == 409
    assert remote.delete("/collections/kb", headers=writer).status_code == 204
    assert remote.delete("/collections/kb", headers=writer).status_code == 404
    entries = list(reversed(context.audit.list(actor="alice")))
    assert [(e.action, e.outcome, e.resource, e.request_id) for e in entries] == [
        ("collection.create", "ok", "collection:kb", "r-1"),
        ("collection.create", "error", "collection:kb", "r-1"),
        ("collection.delete", "ok", "collection:kb", "r-1"),
        ("collection.delete", "error", "collection:kb", "r-1"),
    ]
    assert entries[0].detail == {"id": created.json()["id"]}
    assert entries[1].detail == {"code": "collection_exists"}
    assert entries[3].detail == {"code": "collection_not_found"}


def test_refused_writes_are_not_audited(context: AppContext, app: FastAPI) -> None:
    reader = bearer(token(context, "memory:read"))
    client(app).post("/collections", json={"name": "kb"}, headers=reader)
    client(app).post("/collections", json={"name": "kb"})
    assert context.audit.list() == []


class Collected(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def records() -> Iterator[Collected]:
    """What ember.access and ember.auth log (whether or not they propagate)."""
    handler = Collected()
    loggers = [logging.getLogger(name) for name in ("ember.access", "ember.auth")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(level)


def test_the_access_log_names_the_principal(
    context: AppContext, app: FastAPI, records: Collected
) -> None:
    client(app).get("/collections", headers=bearer(token(context, "admin", principal="bob")))
    client(app, LOOPBACK).get("/health")
    access = [r for r in records.records if r.name == "ember.access"]
    assert [getattr(r, "principal", "missing") for r in access] == ["bob", None]


def test_start_up_says_whether_tokens_are_required(context: AppContext, records: Collected) -> None:
    create_app(context)
    context.tokens.create("ci", "ci", ["admin"])
    create_app(context)
    auth = [(r.levelname, r.getMessage()) for r in records.records if r.name == "ember.auth"]
    assert auth[0][0] == "WARNING"
    assert auth[0][1].startswith("no API tokens configured: accepting loopback clients only")
    assert auth[1][0] == "INFO" and "every request needs a bearer token" in auth[1][1]


def test_every_route_declares_a_scope(app: FastAPI) -> None:
    routes = route_access(app)
    assert {route.path for route in routes} >= {"/health", "/collections", "/collections/{name}"}
    for route in routes:
        if route.path in PUBLIC_PATHS:
            assert not route.scopes, f"{route.path} is public and needs no scope"
        else:
            assert route.scopes, f"{route.path} declares no scope: add Depends(require(...))"
    assert len([route for route in routes if route.scopes]) >= 7


def test_the_route_walk_catches_a_route_without_a_scope(app: FastAPI) -> None:
    @app.get("/forgotten")
    def forgotten() -> None: ...

    @app.websocket("/ws/forgotten")
    async def forgotten_socket(websocket: WebSocket) -> None: ...

    unscoped = {route.path for route in route_access(app) if not route.scopes}
    assert unscoped - PUBLIC_PATHS == {"/forgotten", "/ws/forgotten"}


def test_route_scopes_of_included_routes(app: FastAPI) -> None:
    scopes = {
        (route.path, method): route.scopes
        for route in route_access(app)
        for method in route.methods
    }
    assert scopes["/collections", "GET"] == {Scope.MEMORY_READ}
    assert scopes["/collections", "POST"] == {Scope.MEMORY_WRITE}
    assert scopes["/collections/{name}/documents", "POST"] == {Scope.MEMORY_WRITE}
    assert scopes["/collections/{name}/search", "POST"] == {Scope.MEMORY_READ}
    assert scopes["/health", "GET"] == frozenset()


def test_openapi_publishes_the_scheme_and_each_scope(app: FastAPI) -> None:
    spec = client(app).get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["bearer"] == {"type": "http", "scheme": "bearer"}
    collections = spec["paths"]["/collections"]
    assert collections["get"]["security"] == [{"bearer": ["memory:read"]}]
    assert collections["post"]["security"] == [{"bearer": ["memory:write"]}]
    assert {"401", "403", "429"} <= collections["post"]["responses"].keys()
    assert "security" not in spec["paths"]["/health"]["get"]


def test_websockets_are_authenticated_like_http(context: AppContext, app: FastAPI) -> None:
    @app.websocket("/ws/echo")
    async def echo(
        websocket: WebSocket, principal: Annotated[Principal, Depends(require(Scope.JOBS_READ))]
    ) -> None:
        await websocket.accept()
        await websocket.send_text(principal.name)
        await websocket.close()

    with client(app, LOOPBACK).websocket_connect("/ws/echo") as socket:
        assert socket.receive_text() == "local"
    secret = token(context, "jobs:read", principal="viewer")
    remote = client(app)
    with pytest.raises(WebSocketDenialResponse) as denied:
        remote.websocket_connect("/ws/echo").__enter__()
    assert denied.value.status_code == 401
    assert denied.value.json()["code"] == "unauthorized"
    with remote.websocket_connect(f"/ws/echo?access_token={secret}") as socket:
        assert socket.receive_text() == "viewer"
    with remote.websocket_connect("/ws/echo", headers=bearer(secret)) as socket:
        assert socket.receive_text() == "viewer"
    other = token(context, "memory:read", principal="reader")
    with pytest.raises(WebSocketDenialResponse) as forbidden:
        remote.websocket_connect(f"/ws/echo?access_token={other}").__enter__()
    assert forbidden.value.status_code == 403


async def test_a_websocket_server_without_denial_responses_gets_a_1008_close(
    app: FastAPI,
) -> None:
    scope = {
        "type": "websocket",
        "path": "/ws",
        "headers": [],
        "query_string": b"",
        "client": REMOTE,
        "app": app,
        "extensions": {},
    }

    async def never() -> dict[str, Any]:
        raise AssertionError("not read")

    async def ignore(message: Any) -> None:
        raise AssertionError("not sent")

    with pytest.raises(WebSocketException) as closed:
        await require(Scope.JOBS_READ)(WebSocket(scope, never, ignore))
    assert closed.value.code == 1008
    assert closed.value.reason.startswith("unauthorized: this request needs")
