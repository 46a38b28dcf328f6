"""The front door: ``Host``, ``Origin`` and body size, checked before the app sees a request.

:class:`FrontDoor` is pure ASGI and wraps the whole app (inside the request-id middleware, so
its refusals carry a request id and get an access-log line). For every HTTP request and
WebSocket upgrade, in this order:

1. ``Host`` must name this server (:class:`HostRules`): ``localhost``, ``127.0.0.1``,
   ``[::1]``, ``server.host``, ``server.host:server.port`` or an entry of
   ``server.allowed_hosts`` (a bare name allows any port, ``name:port`` that port only);
   when ``server.host`` is a wildcard (``0.0.0.0``, ``::``), any IP address too. Else 421
   ``host_not_allowed``. A page that rebinds its DNS name to 127.0.0.1 still sends its own
   name, and so does a tunnel that forwards a public name to the loopback port.
2. A request that carries ``Origin`` (every browser WebSocket does, and cross-origin
   ``fetch``) must come from ember's own origin (the ``Origin``'s host and port are the
   ``Host``'s) or one of ``server.allowed_origins``. Else 403 ``origin_not_allowed``.
3. An HTTP body may not be larger than the route's cap: ``server.max_upload_bytes`` for
   ``POST /collections/{name}/documents`` and ``/import``, ``server.max_body_bytes`` for the
   rest. A
   ``Content-Length`` over the cap is refused before the app runs; a body without one is
   counted as it arrives and refused at the first byte over the cap (nothing is buffered
   here). Either way the answer is 413 ``request_too_large`` with ``limit_bytes``.

Refusals are problem+json; a refused WebSocket upgrade gets the same document as an HTTP
denial response where the server supports that extension, else a close with code 1008.

CORS is closed unless ``server.allowed_origins`` names origins: then
:func:`install_front_door` adds Starlette's CORS middleware for exactly those (preflights
answered, ``Access-Control-Allow-Origin`` on their responses, no credentials: ember's
clients send bearer tokens, not cookies).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ember.config import ServerConfig
from ember.errors import EmberError, HostNotAllowed, OriginNotAllowed, RequestTooLarge
from ember.serve_app.problems import PROBLEM_JSON, problem_bytes

__all__ = [
    "UPLOAD_PATH",
    "BodyLimits",
    "FrontDoor",
    "HostRules",
    "install_front_door",
    "split_host",
]

UPLOAD_PATH = re.compile(r"/collections/[^/]+/(documents|import)")
"""The routes whose body may be as large as ``server.max_upload_bytes``."""

_LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
_WILDCARDS = frozenset({"0.0.0.0", "::", ""})
_NAME = re.compile(r"[a-z0-9_\-.]+")
_DEFAULT_PORTS = {"http": 80, "ws": 80, "https": 443, "wss": 443}
_WS_DENIAL = "websocket.http.response"
_CORS_HEADERS = [
    "Authorization",
    "Content-Type",
    "Idempotency-Key",
    "Last-Event-ID",
    "X-Request-ID",
    "X-Ember-Provider",
    "X-Ember-Fallback",
]
_CORS_EXPOSED = ["X-Request-ID", "X-Ember-Provider", "X-Ember-Model", "Location", "Retry-After"]
_POLICY_VIOLATION = 1008


def split_host(value: str) -> tuple[str, int | None] | None:
    """A ``Host`` value (``name``, ``name:port``, ``[v6]``, ``[v6]:port``) as its lowercase
    host, without brackets or a trailing dot, and its port; ``None`` when it is malformed."""
    text = value.strip().lower()
    if text.startswith("["):
        inside, bracket, rest = text[1:].partition("]")
        if not bracket:
            return None
        try:
            host = str(ipaddress.IPv6Address(inside))
        except ValueError:
            return None
    else:
        if text.count(":") > 1:
            return None
        host, colon, port_text = text.partition(":")
        rest = colon + port_text
        host = host.rstrip(".")
        if not _NAME.fullmatch(host):
            return None
    if not rest:
        return host, None
    port = rest[1:]
    if not rest.startswith(":") or not _digits(port) or not 0 < int(port) < 65536:
        return None
    return host, int(port)


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class _Origin:
    scheme: str
    host: str
    port: int


def _parse_origin(value: str) -> _Origin | None:
    scheme, sep, rest = value.strip().lower().partition("://")
    if not sep or scheme not in _DEFAULT_PORTS or "/" in rest:
        return None
    parts = split_host(rest)
    if parts is None:
        return None
    host, port = parts
    return _Origin(scheme, host, _DEFAULT_PORTS[scheme] if port is None else port)


class HostRules:
    """Which ``Host`` headers and ``Origin`` headers this server answers.

    :param bind_host: ``server.host``.
    :param bind_port: ``server.port``.
    :param allowed_hosts: ``server.allowed_hosts``.
    :param allowed_origins: ``server.allowed_origins``.
    """

    def __init__(
        self,
        bind_host: str,
        bind_port: int,
        allowed_hosts: Iterable[str] = (),
        allowed_origins: Iterable[str] = (),
    ) -> None:
        self._names: set[str] = set(_LOOPBACK_NAMES)
        self._pairs: set[tuple[str, int]] = set()
        bound = bind_host.strip().strip("[]").lower()
        self._any_ip = bound in _WILDCARDS
        if not self._any_ip:
            entries = [bind_host if ":" not in bound else f"[{bound}]"]
            entries.append(f"{entries[0]}:{bind_port}")
        else:
            entries = []
        for entry in [*entries, *allowed_hosts]:
            parts = split_host(entry)
            if parts is None:
                raise ValueError(f"{entry!r} is not a host name or name:port")
            host, port = parts
            if port is None:
                self._names.add(host)
            else:
                self._pairs.add((host, port))
        self._origins: set[_Origin] = set()
        for entry in allowed_origins:
            origin = _parse_origin(entry)
            if origin is None:
                raise ValueError(f"{entry!r} is not an origin like https://app.example:8443")
            self._origins.add(origin)

    @property
    def cross_origins(self) -> list[str]:
        """The configured origins as browsers send them (for CORS): ``scheme://host``, with
        ``:port`` unless it is the scheme's default."""
        found = []
        for origin in self._origins:
            port = "" if _DEFAULT_PORTS[origin.scheme] == origin.port else f":{origin.port}"
            found.append(f"{origin.scheme}://{_bracketed(origin.host)}{port}")
        return sorted(found)

    def host_allowed(self, value: str | None) -> bool:
        """Whether a request whose ``Host`` header is ``value`` is for this server."""
        parts = None if value is None else split_host(value)
        if parts is None:
            return False
        host, port = parts
        if host in self._names or (port is not None and (host, port) in self._pairs):
            return True
        return self._any_ip and _is_ip(host)

    def origin_allowed(self, origin: str, host: str) -> bool:
        """Whether a request with ``Origin: origin`` and an allowed ``Host: host`` may go on:
        same origin (host and port; a ``Host`` without a port has the origin scheme's default)
        or a configured origin."""
        parsed = _parse_origin(origin)
        parts = split_host(host)
        if parsed is None or parts is None:
            return False
        if parsed in self._origins:
            return True
        name, port = parts
        return parsed.host == name and parsed.port == (
            _DEFAULT_PORTS[parsed.scheme] if port is None else port
        )


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host


@dataclass(frozen=True, slots=True)
class BodyLimits:
    """The body caps: ``upload_bytes`` for the document upload route, ``body_bytes`` else."""

    body_bytes: int
    upload_bytes: int

    def cap(self, method: str, path: str) -> int:
        """The cap of a ``method`` request to ``path``."""
        if method == "POST" and UPLOAD_PATH.fullmatch(path):
            return self.upload_bytes
        return self.body_bytes


class FrontDoor:
    """Wraps an ASGI app; see the module docstring for the rules.

    :param app: the app behind the door.
    :param hosts: the ``Host`` and ``Origin`` rules.
    :param limits: the body caps.
    """

    def __init__(self, app: ASGIApp, hosts: HostRules, limits: BodyLimits) -> None:
        self.app = app
        self.hosts = hosts
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        error = self._refusal(scope)
        if error is not None:
            await _refuse(scope, receive, send, error)
            return
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return
        cap = self.limits.cap(scope.get("method", ""), scope.get("path", ""))
        declared = _header(scope, b"content-length")
        if declared is not None and _digits(declared) and int(declared) > cap:
            await _refuse(scope, receive, send, _too_large(cap))
            return
        await _Counted(self.app, cap)(scope, receive, send)

    def _refusal(self, scope: Scope) -> EmberError | None:
        host = _header(scope, b"host")
        if host is None or not self.hosts.host_allowed(host):
            shown = "no Host header" if host is None else f"the host {host[:100]!r}"
            return HostNotAllowed(
                f"this server does not answer for {shown}; add it to server.allowed_hosts"
            )
        origin = _header(scope, b"origin")
        if origin is not None and not self.hosts.origin_allowed(origin, host):
            return OriginNotAllowed(
                f"pages from {origin[:100]!r} may not call this server; add the origin to "
                "server.allowed_origins"
            )
        return None


class _Counted:
    """One HTTP request whose body is counted against ``cap`` as the app reads it."""

    def __init__(self, app: ASGIApp, cap: int) -> None:
        self.app = app
        self.cap = cap
        self.seen = 0
        self.over = False
        self.started = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def counted() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                self.seen += len(message.get("body", b""))
                if self.seen > self.cap:
                    self.over = True
                    raise _too_large(self.cap)
            return message

        async def guarded(message: Message) -> None:
            if self.over:
                if message["type"] == "http.response.start" and not self.started:
                    self.started = True
                    await _send_problem(scope, send, _too_large(self.cap))
                return
            if message["type"] == "http.response.start":
                self.started = True
            await send(message)

        try:
            await self.app(scope, counted, guarded)
        except RequestTooLarge:
            if self.started or not self.over:
                raise
            self.started = True
            await _send_problem(scope, send, _too_large(self.cap))


def _too_large(cap: int) -> RequestTooLarge:
    return RequestTooLarge(
        f"the request body is over {cap} bytes, the most this route accepts",
        extra={"limit_bytes": cap},
    )


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            text: str = value.decode("latin-1")
            return text
    return None


async def _send_problem(scope: Scope, send: Send, error: EmberError, prefix: str = "") -> None:
    body = problem_bytes(error, scope.get("path"))
    headers = [
        (b"content-type", PROBLEM_JSON.encode()),
        (b"content-length", str(len(body)).encode()),
        *((k.lower().encode(), v.encode()) for k, v in error.headers.items()),
    ]
    await send({"type": f"{prefix}http.response.start", "status": error.status, "headers": headers})
    await send({"type": f"{prefix}http.response.body", "body": body})


async def _refuse(scope: Scope, receive: Receive, send: Send, error: EmberError) -> None:
    if scope["type"] == "http":
        await _send_problem(scope, send, error)
        return
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    if _WS_DENIAL in scope.get("extensions", {}):
        await _send_problem(scope, send, error, prefix="websocket.")
        return
    reason = f"{error.code}: {error.detail}".encode()[:123].decode(errors="ignore")
    await send({"type": "websocket.close", "code": _POLICY_VIOLATION, "reason": reason})


def install_front_door(app: FastAPI, server: ServerConfig) -> None:
    """Put :class:`FrontDoor` (and CORS, when ``server.allowed_origins`` is set) in front of
    ``app`` with the rules of ``server``. Call it before the request-id middleware is added,
    so that one stays outermost."""
    hosts = HostRules(server.host, server.port, server.allowed_hosts, server.allowed_origins)
    if hosts.cross_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=hosts.cross_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=_CORS_HEADERS,
            expose_headers=_CORS_EXPOSED,
            max_age=600,
        )
    limits = BodyLimits(server.max_body_bytes, server.max_upload_bytes)
    app.add_middleware(FrontDoor, hosts=hosts, limits=limits)
