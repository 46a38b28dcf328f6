"""Issue 15, defect 11: a WebSocket to a job that does not exist is refused with
``job_not_found`` (a 404 problem document as the denial response where the server sends one,
else a close with code 1008 and a reason starting ``job_not_found``), not a bare 403."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.testclient import WebSocketDenialResponse

from ember.serve_app import AppContext, create_app
from tests.serve_app.conftest import Serve, problem, raw_request, upgrade_lines
from tests.support.app import migrated_context


@pytest.fixture
def context(tmp_path: Path) -> Iterator[AppContext]:
    with migrated_context(tmp_path) as context:
        yield context


def test_an_unknown_job_is_a_404_denial(context: AppContext) -> None:
    _, secret = context.tokens.create("ci", "ci", ["jobs:read"])
    client = TestClient(create_app(context))
    with pytest.raises(WebSocketDenialResponse) as denied:
        client.websocket_connect(
            "/jobs/no-such-job/ws", headers={"Authorization": f"Bearer {secret}"}
        ).__enter__()
    reply = denied.value
    assert reply.status_code == 404
    assert reply.headers["content-type"] == "application/problem+json"
    body = reply.json()
    assert body["code"] == "job_not_found" and "no-such-job" in body["detail"]
    assert body["request_id"] == reply.headers["x-request-id"]


def test_an_unknown_job_over_uvicorn_is_a_404_problem(serve: Serve) -> None:
    ember = serve()
    lines = upgrade_lines("/jobs/no-such-job/ws", f"127.0.0.1:{ember.port}")
    status, headers, body = raw_request(ember.port, lines)
    assert status == 404
    document = problem(status, headers, body)
    assert document["code"] == "job_not_found"
    assert document["request_id"] == headers["x-request-id"]


async def test_without_denial_responses_the_close_reason_names_the_code(
    context: AppContext,
) -> None:
    app = create_app(context)
    scope = {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "scheme": "ws",
        "path": "/jobs/no-such-job/ws",
        "raw_path": b"/jobs/no-such-job/ws",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
        "subprotocols": [],
        "extensions": {},
    }
    sent: list[dict[str, Any]] = []
    incoming = [{"type": "websocket.connect"}]

    async def receive() -> dict[str, Any]:
        return incoming.pop(0) if incoming else {"type": "websocket.disconnect", "code": 1000}

    async def send(message: Any) -> None:
        sent.append(message)

    await app(scope, receive, send)
    [close] = [m for m in sent if m["type"] == "websocket.close"]
    assert close["code"] == 1008
    assert close["reason"].startswith("job_not_found")
