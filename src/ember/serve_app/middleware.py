"""Request ids, access logs and the last line of defence against unhandled errors.

:class:`RequestContextMiddleware` is pure ASGI (no per-request task or body copy). For every
HTTP and WebSocket request it takes ``X-Request-ID`` when it is a sane token (1 to 200
printable ASCII characters, no spaces) or makes a new one, binds it to
:data:`~ember.observability.REQUEST_ID` for the logs, echoes it in the response (unless a
proxy in front already does: Ray Serve's proxy forwards and echoes the header itself), and
writes one access-log line (with the ``principal`` the auth dependency admitted, or null).
An exception that escapes the app becomes a 500 problem+json without a stack trace (the
trace goes to the log).
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ember.errors import EmberError
from ember.observability import REQUEST_ID
from ember.serve_app.problems import PROBLEM_JSON, problem_bytes

__all__ = ["REQUEST_ID_HEADER", "RequestContextMiddleware"]

REQUEST_ID_HEADER = "x-request-id"
_VALID = re.compile(r"[\x21-\x7e]{1,200}")
log = logging.getLogger("ember.access")


def _incoming_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            text = value.decode("latin-1")
            return text if _VALID.fullmatch(text) else None
    return None


class RequestContextMiddleware:
    """Wraps an ASGI app; see the module docstring for the contract."""

    def __init__(self, app: ASGIApp, echo: bool = True) -> None:
        self.app = app
        self.echo = echo

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request_id = _incoming_id(scope) or uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        token = REQUEST_ID.set(request_id)
        status = 0
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] in ("http.response.start", "websocket.http.response.start"):
                status = message["status"]
            if message["type"] == "http.response.start" and self.echo:
                headers = [
                    (k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"
                ]
                headers.append((b"x-request-id", request_id.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
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
            log.info(
                "%s %s %s",
                scope.get("method", "WS"),
                scope.get("path"),
                status,
                extra={
                    "method": scope.get("method", "WS"),
                    "path": scope.get("path"),
                    "status": status,
                    "principal": getattr(state.get("principal"), "name", None),
                    "latencyMs": round((time.perf_counter() - started) * 1000, 2),
                },
            )
            REQUEST_ID.reset(token)
