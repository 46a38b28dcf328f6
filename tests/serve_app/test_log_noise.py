"""Issue 15, defect 15: what a new user's logs say. A client that leaves an event stream is
normal (no ERROR, no traceback; the access line says ``disconnected``), a real crash still is
an ERROR and a 500, and the start-up warning about the model registry always gives a reason."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from anyio import BrokenResourceError, ClosedResourceError
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocketDisconnect

from ember.actors.model_access import ModelHostDemand
from ember.jobs.records import NewJob
from ember.serve_app.middleware import RequestContextMiddleware, client_gone
from tests.support.live_app import live_app

DISCONNECTS = [
    ClientDisconnect(),
    ClosedResourceError(),
    BrokenResourceError(),
    WebSocketDisconnect(1001),
    ExceptionGroup("stream", [ClientDisconnect(), ClosedResourceError()]),
]


class Records(logging.Handler):
    """Every record of the ``ember`` and ``uvicorn`` loggers and the root, propagated or not."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if not any(record is seen for seen in self.records):  # reached through two loggers
            self.records.append(record)

    def errors(self) -> list[str]:
        return [f"{r.name}: {r.getMessage()}" for r in self.records if r.levelno >= logging.ERROR]

    def access(self, path: str) -> list[logging.LogRecord]:
        return [
            r
            for r in self.records
            if r.name == "ember.access" and r.getMessage().split()[1:2] == [path]
        ]


@pytest.fixture
def records() -> Iterator[Records]:
    handler = Records()
    loggers = [logging.getLogger(name) for name in ("ember", "uvicorn", "")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
    logging.getLogger("ember").setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(level)


def test_leaving_the_event_stream_of_a_running_job_is_no_error(
    tmp_path: Path, records: Records
) -> None:
    with live_app(tmp_path, {"EMBER_JOBS_HEARTBEAT_S": "0.2"}) as app:
        job, _ = app.jobs.create(NewJob("long-running", {}, "tester"))
        [running] = app.jobs.claim("long-running", "worker-elsewhere", 300, 1)
        assert running.id == job.id and running.state.value == "running"
        path = f"/jobs/{job.id}/events"
        with (
            httpx.Client(headers=app.auth, timeout=30) as http,
            http.stream("GET", f"{app.url}{path}") as reply,
        ):
            assert reply.status_code == 200
            assert next(reply.iter_raw())  # an event or a heartbeat: the stream is live
        # the client is gone; the server notices at its next write and logs the access line
        deadline = time.monotonic() + 30
        while not records.access(path) and time.monotonic() < deadline:
            time.sleep(0.05)
        [line] = records.access(path)
    assert line.levelno == logging.INFO and getattr(line, "status", None) == 200
    assert records.errors() == []
    assert not any(r.exc_info for r in records.records if r.name.startswith("ember"))


def http_scope(path: str = "/stream") -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }


async def run(app: Any) -> list[dict[str, Any]]:
    """``app`` behind the middleware, once; what it sent."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    await RequestContextMiddleware(app)(http_scope(), receive, send)
    return sent


@pytest.mark.parametrize("gone", DISCONNECTS, ids=lambda e: type(e).__name__)
@pytest.mark.parametrize("started", [True, False], ids=["after-start", "before-start"])
async def test_a_disconnect_is_no_error(records: Records, gone: Exception, started: bool) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if started:
            await send({"type": "http.response.start", "status": 200, "headers": []})
        raise gone

    sent = await run(app)
    assert client_gone(gone)
    assert records.errors() == []
    assert [m["type"] for m in sent] == (["http.response.start"] if started else [])
    [line] = records.access("/stream")
    assert getattr(line, "disconnected", False) is True
    assert getattr(line, "status", None) == (200 if started else 0)


async def test_a_cancelled_request_is_logged_and_still_cancelled(records: Records) -> None:
    entered = asyncio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        entered.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(run(app))
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert records.errors() == []
    [line] = records.access("/stream")
    assert getattr(line, "disconnected", False) is True


async def test_a_real_crash_is_still_an_error_and_a_500(records: Records) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("boom")

    sent = await run(app)
    assert not client_gone(RuntimeError("boom"))
    assert sent[0]["status"] == 500
    assert records.errors() == ["ember.access: unhandled error"]
    assert not client_gone(ExceptionGroup("mixed", [ClientDisconnect(), RuntimeError("x")]))


class SilentRegistry:
    """A ModelRegistry handle whose ``resource_demand`` fails with ``error`` (or never
    answers when it is ``None``)."""

    def __init__(self, error: BaseException | None) -> None:
        self.error = error
        self.resource_demand = self

    def remote(self) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self.error is not None:
            future.set_exception(self.error)
        return future


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (None, "no answer within 0.01 s"),
        (RuntimeError(), "RuntimeError()"),
        (RuntimeError("the actor died"), "the actor died"),
    ],
)
async def test_the_model_registry_warning_gives_a_reason(
    records: Records, error: BaseException | None, reason: str
) -> None:
    demand = ModelHostDemand(timeout_s=0.01)
    demand._registry = SilentRegistry(error)
    assert await demand() == ([], [])
    [warning] = [r.getMessage() for r in records.records if r.levelno == logging.WARNING]
    assert warning == f"the model registry did not report its hosts: {reason}"
