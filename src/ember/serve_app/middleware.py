"""Request ids, access logs and the last line of defence against unhandled errors.

:class:`RequestContextMiddleware` is pure ASGI (no per-request task or body copy). For every
HTTP and WebSocket request it takes ``X-Request-ID`` when it is a sane token (1 to 128
printable ASCII characters, no spaces: what the ``request_id`` columns hold) or makes a new
one, binds it to :data:`~ember.observability.REQUEST_ID` for the logs, and writes one
access-log line (with the ``principal`` the auth dependency admitted, or null). The response
header, the ``request_id`` of a problem+json body and the logs always carry the same id: an
invalid incoming id is never echoed, the new one replaces it in the request's headers too
(what the app reads) and in the response's.

Echoing: with ``echo`` (the default, and under ``uvicorn``) the middleware sets the
response's ``X-Request-ID`` itself, on HTTP responses, WebSocket accepts and WebSocket denial
responses. Behind Ray Serve's proxy (``echo=False``) the proxy does it: it echoes the id it
received, or one it generated, and forwards that id to the replica. So that the proxy never
echoes an invalid id, ``ember up`` starts a local cluster with :data:`PROXY_CALLBACK` as the
proxy's ``RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH``: :class:`RequestIdGate` runs in the
proxy in front of its own request-id middleware and replaces an invalid id by a new one, which
the proxy then echoes and forwards, and which the app here adopts. A cluster ember joins (or a
Serve config file) gets the gate only where that variable was set when its nodes started.

Each request is one span (kind server) of ``tracer``: named ``{method} {route template}``
(``WS`` for WebSockets), a child of the client's W3C ``traceparent`` when it sends a valid
one, with ``http.request.method``, ``http.route``, ``url.path`` and
``http.response.status_code``; a 5xx marks it failed. Everything the app does runs inside it.

Each request is counted in ``metrics``: ``ember_http_requests_total`` and
``ember_http_request_duration_seconds`` by route template (``unmatched`` when no route took
it, so no client-chosen path becomes a label), method and status class, and
``ember_http_requests_in_flight`` while it runs.

A client that goes away (Starlette's ``ClientDisconnect``, ``WebSocketDisconnect``, anyio's
``ClosedResourceError`` and ``BrokenResourceError``, a cancelled request) is normal: a DEBUG
line, and ``disconnected: true`` on the access line; cancellation is re-raised. Any other
exception that escapes the app becomes a 500 problem+json without a stack trace (the trace
goes to the log as ERROR ``unhandled error``).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import Iterable
from typing import Any

from anyio import BrokenResourceError, ClosedResourceError
from opentelemetry import trace
from opentelemetry.trace import NoOpTracer, SpanKind, Status, StatusCode, Tracer
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocketDisconnect

from ember.errors import EmberError
from ember.observability import REQUEST_ID
from ember.observability.metrics import Metrics, NoMetrics, status_class
from ember.observability.tracing import extract
from ember.serve_app.problems import PROBLEM_JSON, problem_bytes

__all__ = [
    "MAX_REQUEST_ID_LENGTH",
    "PROXY_CALLBACK",
    "PROXY_CALLBACK_ENV",
    "REQUEST_ID_HEADER",
    "RequestContextMiddleware",
    "RequestIdGate",
    "client_gone",
    "proxy_middlewares",
    "valid_request_id",
]

REQUEST_ID_HEADER = "x-request-id"
MAX_REQUEST_ID_LENGTH = 128
"""The longest ``X-Request-ID`` taken as given (the ``request_id`` columns are 128 wide)."""
PROXY_CALLBACK_ENV = "RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH"
"""The variable Ray Serve's proxy reads, at start, for a callback giving it middlewares."""
PROXY_CALLBACK = "ember.serve_app.middleware.proxy_middlewares"
"""ember's value of :data:`PROXY_CALLBACK_ENV`."""

_HEADER = REQUEST_ID_HEADER.encode()
_VALID = re.compile(rf"[\x21-\x7e]{{1,{MAX_REQUEST_ID_LENGTH}}}")
_GONE = (ClientDisconnect, WebSocketDisconnect, ClosedResourceError, BrokenResourceError)
_STARTS = ("http.response.start", "websocket.http.response.start", "websocket.accept")
log = logging.getLogger("ember.access")


def valid_request_id(value: str) -> bool:
    """Whether ``value`` is taken as a request id: 1 to 128 printable ASCII, no spaces."""
    return _VALID.fullmatch(value) is not None


def client_gone(exc: BaseException) -> bool:
    """Whether ``exc`` only says that the client went away (or the request was cancelled):
    one of the disconnect errors, or a group of nothing else."""
    if isinstance(exc, BaseExceptionGroup):
        return all(client_gone(inner) for inner in exc.exceptions)
    return isinstance(exc, (*_GONE, asyncio.CancelledError))


def _incoming_id(scope: Scope) -> tuple[str | None, bool]:
    """The incoming id when valid, and whether the request carried one at all."""
    for name, value in scope.get("headers", ()):
        if name == _HEADER:
            text = value.decode("latin-1")
            return (text if valid_request_id(text) else None), True
    return None, False


def _with_id(headers: Iterable[tuple[bytes, bytes]], request_id: str) -> list[tuple[bytes, bytes]]:
    """``headers`` with exactly one ``X-Request-ID``: ``request_id``."""
    kept = [(k, v) for k, v in headers if k.lower() != _HEADER]
    kept.append((_HEADER, request_id.encode()))
    return kept


class RequestIdGate:
    """Ray Serve proxy middleware: an invalid ``X-Request-ID`` becomes a new id before the
    proxy reads it (see the module docstring); valid and absent ones are left alone."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            request_id, present = _incoming_id(scope)
            if present and request_id is None:
                scope["headers"] = _with_id(scope.get("headers", ()), uuid.uuid4().hex)
        await self.app(scope, receive, send)


def proxy_middlewares() -> list[Middleware]:
    """What Ray Serve's proxy calls through :data:`PROXY_CALLBACK`: :class:`RequestIdGate`."""
    return [Middleware(RequestIdGate)]


class RequestContextMiddleware:
    """Wraps an ASGI app; see the module docstring for the contract."""

    def __init__(
        self,
        app: ASGIApp,
        echo: bool = True,
        tracer: Tracer | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.app = app
        self.echo = echo
        self.tracer = tracer or NoOpTracer()
        self.metrics = metrics or NoMetrics()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request_id, present = _incoming_id(scope)
        if request_id is None:
            request_id = uuid.uuid4().hex
            if present:
                scope["headers"] = _with_id(scope.get("headers", ()), request_id)
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        token = REQUEST_ID.set(request_id)
        status = 0
        disconnected = False
        started = time.perf_counter()
        method = scope.get("method", "WS")
        span = self.tracer.start_span(
            method,
            context=extract(_trace_headers(scope)),
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method, "url.path": scope.get("path", "")},
        )
        attached = trace.use_span(span, end_on_exit=False)
        attached.__enter__()
        self.metrics.inc("ember_http_requests_in_flight", 1, method=method)

        async def send_with_id(message: Message) -> None:
            nonlocal status
            kind = message["type"]
            if kind in ("http.response.start", "websocket.http.response.start"):
                status = message["status"]
            elif kind == "websocket.accept":
                status = 101
            if self.echo and kind in _STARTS:
                message["headers"] = _with_id(message.get("headers", ()), request_id)
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except asyncio.CancelledError:
            disconnected = True
            log.debug("the request was cancelled", extra={"path": scope.get("path")})
            raise
        except Exception as exc:
            if client_gone(exc):
                disconnected = True
                log.debug(
                    "the client went away: %s",
                    type(exc).__name__,
                    extra={"path": scope.get("path")},
                )
                return
            log.exception("unhandled error", extra={"path": scope.get("path")})
            if status == 0 and scope["type"] == "http":
                body = problem_bytes(EmberError(), scope.get("path"))
                await send_with_id(
                    {
                        "type": "http.response.start",
                        "status": 500,
                        "headers": [(b"content-type", PROBLEM_JSON.encode())],
                    }
                )
                await send({"type": "http.response.body", "body": body})
        finally:
            extra: dict[str, Any] = {
                "method": scope.get("method", "WS"),
                "path": scope.get("path"),
                "status": status,
                "principal": getattr(state.get("principal"), "name", None),
                "latencyMs": round((time.perf_counter() - started) * 1000, 2),
            }
            if disconnected:
                extra["disconnected"] = True
            log.info("%s %s %s", extra["method"], extra["path"], status, extra=extra)
            self._count(scope, method, status, time.perf_counter() - started)
            _finish(span, scope, method, status, disconnected)
            attached.__exit__(None, None, None)
            REQUEST_ID.reset(token)

    def _count(self, scope: Scope, method: str, status: int, seconds: float) -> None:
        route = getattr(scope.get("route"), "path", None) or "unmatched"
        metrics = self.metrics
        metrics.inc("ember_http_requests_in_flight", -1, method=method)
        metrics.inc(
            "ember_http_requests_total", route=route, method=method, status=status_class(status)
        )
        metrics.observe("ember_http_request_duration_seconds", seconds, route=route, method=method)


_TRACE_HEADERS = (b"traceparent", b"tracestate")


def _trace_headers(scope: Scope) -> dict[str, str] | None:
    found = {
        name.decode(): value.decode("latin-1")
        for name, value in scope.get("headers", ())
        if name in _TRACE_HEADERS
    }
    return found or None


def _finish(span: Any, scope: Scope, method: str, status: int, disconnected: bool) -> None:
    if span.is_recording():
        route = getattr(scope.get("route"), "path", None)
        if route:
            span.update_name(f"{method} {route}")
            span.set_attribute("http.route", route)
        if status:
            span.set_attribute("http.response.status_code", status)
        if disconnected:
            span.set_attribute("ember.disconnected", True)
        if status >= 500 or (status == 0 and not disconnected):
            span.set_attribute("error.type", str(status) if status else "no_response")
            span.set_status(Status(StatusCode.ERROR))
    span.end()
