"""Issue 15, defect 8: the request id in the response header, the problem document and the
logs is always the same one. An ``X-Request-ID`` ember does not take (a space, 300
characters) is replaced by a new id everywhere, with ember echoing (uvicorn) and behind Ray
Serve's proxy (which echoes the header itself: ember's gate runs in the proxy)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from ray.serve._private.http_util import (
    _apply_middlewares,
    validate_http_proxy_callback_return,
)
from ray.serve._private.utils import call_function_from_import_path
from starlette.types import ASGIApp, Receive, Scope, Send

from ember.observability import JsonFormatter
from ember.serve_app import AppContext, create_app
from ember.serve_app.middleware import (
    MAX_REQUEST_ID_LENGTH,
    PROXY_CALLBACK,
    RequestContextMiddleware,
    RequestIdGate,
    valid_request_id,
)
from tests.support.app import migrated_context

REJECTED = ["has space", "x" * 300, "x" * (MAX_REQUEST_ID_LENGTH + 1), "tab\there"]


class AccessLines(logging.Handler):
    """The access-log lines as ember's JSON formatter writes them."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.formatter_ = JsonFormatter("test")
        self.lines: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.formatter_.format(record)))


@pytest.fixture
def access() -> Iterator[AccessLines]:
    handler = AccessLines()
    logger = logging.getLogger("ember.access")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


@pytest.fixture
def context(tmp_path: Path) -> Iterator[AppContext]:
    with migrated_context(tmp_path) as context:
        yield context


def test_the_rule() -> None:
    assert valid_request_id("a" * MAX_REQUEST_ID_LENGTH)
    assert valid_request_id("e2e-3f6c2b1e")
    assert not any(valid_request_id(value) for value in REJECTED)
    assert not valid_request_id("")


@pytest.mark.parametrize("sent", REJECTED)
def test_an_id_ember_does_not_take_is_replaced_everywhere(
    context: AppContext, access: AccessLines, sent: str
) -> None:
    client = TestClient(create_app(context))
    reply = client.get("/jobs/nope", headers={"X-Request-ID": sent})  # not loopback: 401
    assert reply.status_code == 401
    [header] = reply.headers.get_list("x-request-id")
    assert header != sent and valid_request_id(header)
    assert reply.json()["request_id"] == header
    [line] = [line for line in access.lines if line["path"] == "/jobs/nope"]
    assert line["requestId"] == header


def test_a_valid_id_is_kept_everywhere(context: AppContext, access: AccessLines) -> None:
    sent = "r" * MAX_REQUEST_ID_LENGTH
    reply = TestClient(create_app(context)).get("/jobs/nope", headers={"X-Request-ID": sent})
    assert reply.headers.get_list("x-request-id") == [sent]
    assert reply.json()["request_id"] == sent
    assert [line["requestId"] for line in access.lines if line["path"] == "/jobs/nope"] == [sent]


def test_the_app_reads_the_replacement_not_the_invalid_header() -> None:
    seen: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.extend(value.decode() for name, value in scope["headers"] if name == b"x-request-id")
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    client = TestClient(RequestContextMiddleware(app))
    reply = client.get("/", headers={"X-Request-ID": "has space"})
    assert seen == reply.headers.get_list("x-request-id")
    assert seen != ["has space"]


def served_by_ray_proxy(app: FastAPI) -> ASGIApp:
    """``app`` behind the middlewares Ray Serve's proxy applies: its own RequestIdMiddleware
    (which echoes the id it saw) inside what ember's callback adds."""
    middlewares = validate_http_proxy_callback_return(
        call_function_from_import_path(PROXY_CALLBACK)
    )
    assert [m.cls for m in middlewares] == [RequestIdGate]
    return _apply_middlewares(app, middlewares)  # type: ignore[no-any-return]


@pytest.mark.parametrize("sent", ["has space", "x" * 300])
def test_behind_ray_serves_proxy_the_echoed_id_is_the_logged_one(
    context: AppContext, access: AccessLines, sent: str
) -> None:
    proxied = served_by_ray_proxy(create_app(context, echo_request_id=False))
    reply = TestClient(proxied).get("/jobs/nope", headers={"X-Request-ID": sent})
    assert reply.status_code == 401
    [header] = reply.headers.get_list("x-request-id")  # the proxy's echo, and only that
    assert header != sent
    assert reply.json()["request_id"] == header
    assert [line["requestId"] for line in access.lines if line["path"] == "/jobs/nope"] == [header]


def test_behind_ray_serves_proxy_a_valid_or_missing_id_is_left_to_it(
    context: AppContext,
) -> None:
    client = TestClient(served_by_ray_proxy(create_app(context, echo_request_id=False)))
    kept = client.get("/jobs/nope", headers={"X-Request-ID": "mine-1"})
    assert kept.headers.get_list("x-request-id") == ["mine-1"]
    assert kept.json()["request_id"] == "mine-1"
    made = client.get("/jobs/nope")
    [header] = made.headers.get_list("x-request-id")
    assert made.json()["request_id"] == header
