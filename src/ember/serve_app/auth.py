"""Authentication on HTTP and WebSocket requests: ``require(scope)`` as a FastAPI dependency.

Credentials are ``Authorization: Bearer <token>``; a WebSocket may instead pass
``?access_token=<token>`` (browsers cannot set headers on WebSockets). The client is
loopback when the ASGI client address is in 127.0.0.0/8 or is ``::1``. The
:class:`~ember.auth.Authenticator` comes from ``app.state.authenticator`` (set by
:func:`~ember.serve_app.api.create_app`). The principal lands on ``request.state.principal``
and in the access log.

A refused HTTP request is a 401, 403 or 429 problem+json. A refused WebSocket handshake is the
same problem document as an HTTP denial response where the server supports that ASGI
extension, else a close with code 1008 and ``code: detail`` as the reason
(:func:`websocket_refusal`). The ``Host`` and ``Origin`` of every request were checked before
any of this (:mod:`ember.serve_app.guards`), so a loopback client here addressed ember by one
of its own names.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIWebSocketRoute, RouteContext, iter_route_contexts
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import WebSocketException
from starlette.requests import HTTPConnection
from starlette.routing import BaseRoute

from ember.auth import Authenticator, Principal, Scope
from ember.errors import EmberError, Unauthorized

__all__ = [
    "PUBLIC_PATHS",
    "RouteAccess",
    "ScopeRequirement",
    "bearer_token",
    "connection_principal",
    "document_security",
    "is_loopback",
    "require",
    "route_access",
    "route_scopes",
    "websocket_refusal",
]

PUBLIC_PATHS = frozenset(
    {
        "/health",
        "/ready",
        "/openapi.json",
        "/docs",
        "/docs/oauth2-redirect",
        "/docs/assets/{name}",
        "/metrics",
        "/",
        "/ui/assets/{name}",
    }
)
"""The only paths served without a scope."""

_WS_DENIAL = "websocket.http.response"
_POLICY_VIOLATION = 1008
_SECURITY_SCHEME = "bearer"


def is_loopback(host: str | None) -> bool:
    """Whether ``host`` (an ASGI client address) is 127.0.0.0/8 or ``::1`` (also v4-mapped)."""
    if not host:
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def bearer_token(conn: HTTPConnection) -> str | None:
    """The presented token, or ``None`` when there is none.

    :raises Unauthorized: an ``Authorization`` header that is not ``Bearer <token>``.
    """
    header = conn.headers.get("authorization")
    if header is not None:
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("the Authorization header must be `Bearer <token>`")
        return token.strip()
    if conn.scope["type"] == "websocket":
        return conn.query_params.get("access_token") or None
    return None


def connection_principal(conn: HTTPConnection, scope: Scope) -> Principal:
    """Authenticate ``conn`` (a Request or a WebSocket), take its rate limit, check ``scope``.

    Sets ``conn.state.principal``.

    :raises Unauthorized: no valid credentials (401).
    :raises RateLimited: the principal is over its limit (429).
    :raises Forbidden: the principal lacks ``scope`` (403).
    """
    authenticator: Authenticator = conn.app.state.authenticator
    address = conn.client.host if conn.client else None
    principal = authenticator.authorize(
        bearer_token(conn), loopback=is_loopback(address), scope=scope, address=address
    )
    conn.state.principal = principal
    return principal


def websocket_refusal(conn: HTTPConnection, error: EmberError) -> Exception:
    """What to raise to refuse ``conn`` with ``error``: the error itself on HTTP and where
    the server sends WebSocket denial responses (it becomes the problem document), else a
    close with code 1008 and ``code: detail`` as the reason."""
    if conn.scope["type"] != "websocket" or _WS_DENIAL in conn.scope.get("extensions", {}):
        return error
    reason = f"{error.code}: {error.detail}".encode()[:123].decode(errors="ignore")
    return WebSocketException(_POLICY_VIOLATION, reason)


class ScopeRequirement:
    """The dependency :func:`require` returns; ``scope`` is what the route needs. It runs on
    the event loop when the answer needs no database read (the dev bypass with a fresh
    cache), and in the thread pool otherwise."""

    def __init__(self, scope: Scope) -> None:
        self.scope = scope

    def __repr__(self) -> str:
        return f"require({self.scope.value!r})"

    async def __call__(self, conn: HTTPConnection) -> Principal:
        try:
            authenticator: Authenticator = conn.app.state.authenticator
            loopback = is_loopback(conn.client.host if conn.client else None)
            if authenticator.answers_from_memory(bearer_token(conn), loopback=loopback):
                return connection_principal(conn, self.scope)
            return await run_in_threadpool(connection_principal, conn, self.scope)
        except EmberError as exc:
            refusal = websocket_refusal(conn, exc)
            if refusal is exc:
                raise
            raise refusal from exc


def require(scope: Scope) -> ScopeRequirement:
    """A dependency that admits callers holding ``scope`` and returns their Principal.

    Declare it once at the top of a route module, as ``READ = Depends(require(...))`` for a
    route's ``dependencies=[READ]``, or as ``Writer = Annotated[Principal,
    Depends(require(...))]`` for a route that needs the principal.
    """
    return ScopeRequirement(scope)


@dataclass(frozen=True, slots=True)
class RouteAccess:
    """One served route: its path, its HTTP methods (empty for a WebSocket) and its scopes."""

    path: str
    methods: frozenset[str]
    websocket: bool
    scopes: frozenset[Scope]


def route_scopes(route: BaseRoute | RouteContext) -> frozenset[Scope]:
    """The scopes the dependencies of ``route`` require (empty: the route is public)."""
    dependant = getattr(route, "dependant", None)
    found: set[Scope] = set()
    pending = [dependant] if dependant is not None else []
    while pending:
        current = pending.pop()
        if isinstance(current.call, ScopeRequirement):
            found.add(current.call.scope)
        pending.extend(current.dependencies)
    return frozenset(found)


def route_access(app: FastAPI) -> list[RouteAccess]:
    """Every route ``app`` serves (included routers flattened), in order."""
    found = []
    for context in iter_route_contexts(app.routes):
        original = context.original_route
        found.append(
            RouteAccess(
                path=context.path_format or context.path or "",
                methods=frozenset(context.methods or ()),
                websocket=isinstance(original, APIWebSocketRoute),
                scopes=route_scopes(context),
            )
        )
    return found


def document_security(app: FastAPI) -> None:
    """Publish the bearer scheme and each operation's scope, 401, 403 and 429 in OpenAPI."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
        schemes[_SECURITY_SCHEME] = {"type": "http", "scheme": "bearer"}
        for route in route_access(app):
            for method in route.methods if route.scopes else ():
                operation = schema["paths"].get(route.path, {}).get(method.lower())
                if operation is None:
                    continue
                operation["security"] = [{_SECURITY_SCHEME: sorted(route.scopes)}]
                responses = operation.setdefault("responses", {})
                responses.setdefault("401", {"description": "unauthorized"})
                responses.setdefault("403", {"description": "forbidden"})
                responses.setdefault("429", {"description": "rate_limited"})
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
