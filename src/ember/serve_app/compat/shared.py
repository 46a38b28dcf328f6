"""What the OpenAI and Ollama routes share: the caller, per-request overrides, ``keep_alive``,
streams (ended with the usage the router recorded), and the route class that renders errors in
a dialect's own shape.

Overrides become the :class:`~ember.providers.router.RouteRequest`: ``X-Ember-Provider: NAME``
keeps the model's candidates at that provider, ``X-Ember-Fallback: false`` tries the first
candidate only. A body's ``ember`` object (``{"provider", "fallback"}``) does the same and wins
over the headers. The principal and the request id (:mod:`ember.serve_app.middleware`) go along,
so usage rows and log lines carry them.

A stream's first delta is awaited before the response starts: a failure until then (unknown
model, no provider answered, a budget refused) is a plain error response with its status. A
failure after it ends the stream with the dialect's error event (:func:`relay`). A stream holds
one of its principal's stream slots (:mod:`ember.serve_app.streams`) from before the provider
is called until the response ends (:func:`held`).
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Annotated, Any, Protocol

import anyio
from fastapi import Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import StreamingResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from ember.auth import Principal, Scope
from ember.chat import Delta, Usage
from ember.errors import BadRequest, EmberError, ValidationFailed, error_for_status
from ember.providers.router import RoutedStream, RouteRequest
from ember.serve_app.auth import require
from ember.serve_app.streams import HeldStreamingResponse, StreamSlot

__all__ = [
    "FALLBACK_HEADER",
    "MODEL_HEADER",
    "PROVIDER_HEADER",
    "USE",
    "Caller",
    "EmberOverrides",
    "ErrorRenderer",
    "StreamEvents",
    "dialect_route",
    "dialect_status",
    "held",
    "keep_alive_seconds",
    "open_stream",
    "relay",
    "route_request",
    "served_by",
    "stop_sequences",
    "streaming_response",
    "unsupported",
]

log = logging.getLogger(__name__)

PROVIDER_HEADER = "X-Ember-Provider"
"""Request header: answer from this provider only; response header: the provider that did."""
FALLBACK_HEADER = "X-Ember-Fallback"
"""Request header: ``false`` tries the first candidate only."""
MODEL_HEADER = "X-Ember-Model"
"""Response header: the model name at the provider that answered."""

Caller = Annotated[Principal, Depends(require(Scope.MODELS_USE))]
"""The principal of a model call; every route here needs ``models:use``."""
USE = Depends(require(Scope.MODELS_USE))
"""``models:use`` for a route that does not need the principal."""

ErrorRenderer = Callable[[EmberError], Response]
"""An ember error as a dialect's error response."""

_FLAGS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_DURATION = re.compile(rf"(?:{_DURATION_PART.pattern})+")
_UNIT_S = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


class EmberOverrides(BaseModel):
    """The body's ``ember`` object: routing overrides for this one request."""

    model_config = ConfigDict(extra="forbid")

    provider: str | None = Field(None, min_length=1, max_length=64)
    fallback: bool | None = None


class StreamEvents(Protocol):
    """Encodes a stream in one dialect; one instance per response (it may keep state)."""

    def delta(self, delta: Delta) -> list[bytes]:
        """The events for one delta (may be none)."""
        ...

    def end(self, usage: Usage) -> list[bytes]:
        """The events after the last delta (finish, usage, terminator); ``usage`` is the one
        the router recorded for the stream (:attr:`RoutedStream.usage`)."""
        ...

    def error(self, error: EmberError) -> list[bytes]:
        """The events that end a stream which failed after it started."""
        ...


def unsupported(param: str, detail: str) -> BadRequest:
    """The 400 for a request field ember does not support; ``param`` names the field."""
    return BadRequest(f"`{param}` is not supported: {detail}", extra={"param": param})


def route_request(
    request: Request, principal: Principal, overrides: EmberOverrides | None = None
) -> RouteRequest:
    """Who asks, the request id, and the overrides of the headers and the ``ember`` object.

    :raises BadRequest: ``X-Ember-Fallback`` is not ``true`` or ``false`` (or ``1``/``0``).
    """
    provider = request.headers.get(PROVIDER_HEADER, "").strip() or None
    fallback = True
    flag = request.headers.get(FALLBACK_HEADER)
    if flag is not None:
        parsed = _FLAGS.get(flag.strip().lower())
        if parsed is None:
            raise BadRequest(
                f"{FALLBACK_HEADER} must be true or false, not {flag!r}",
                extra={"param": FALLBACK_HEADER},
            )
        fallback = parsed
    if overrides is not None:
        provider = overrides.provider or provider
        fallback = fallback if overrides.fallback is None else overrides.fallback
    return RouteRequest(
        principal=principal.name,
        workspace=principal.workspace,
        request_id=getattr(request.state, "request_id", None),
        provider=provider,
        fallback=fallback,
    )


def keep_alive_seconds(value: float | str | None) -> float | None:
    """Ollama's ``keep_alive`` in seconds: a number of seconds or a Go duration (``"5m"``,
    ``"1h30m"``, ``"-1"``); negative keeps the model loaded, ``0`` unloads it after the call.

    :raises BadRequest: neither a finite number nor a duration.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise BadRequest("keep_alive must be a duration or seconds", extra={"param": "keep_alive"})
    seconds = float(value) if isinstance(value, int | float) else _duration_s(value.strip())
    if not math.isfinite(seconds):
        raise BadRequest(f"keep_alive {value!r} is not finite", extra={"param": "keep_alive"})
    return seconds


def _duration_s(text: str) -> float:
    with contextlib.suppress(ValueError):
        return float(text)
    sign = -1.0 if text.startswith("-") else 1.0
    body = text[1:] if text[:1] in "+-" else text
    if not body or not _DURATION.fullmatch(body):
        raise BadRequest(
            f"keep_alive {text!r} is neither seconds nor a duration like 5m or 1h30m",
            extra={"param": "keep_alive"},
        )
    return sign * sum(float(n) * _UNIT_S[unit] for n, unit in _DURATION_PART.findall(body))


def stop_sequences(stop: str | list[str] | None) -> tuple[str, ...]:
    """A request's ``stop`` (one string or several) as GenerationOptions takes it."""
    if stop is None:
        return ()
    return (stop,) if isinstance(stop, str) else tuple(stop)


def served_by(provider: str | None, model: str | None) -> dict[str, str]:
    """The response headers naming the provider and model that answered."""
    headers = {}
    if provider is not None:
        headers[PROVIDER_HEADER] = provider
    if model is not None:
        headers[MODEL_HEADER] = model
    return headers


async def open_stream(stream: RoutedStream) -> Delta:
    """The first delta of ``stream``; an error before it raises here (the stream is closed)."""
    try:
        return await anext(stream, Delta("", finish_reason="stop"))
    except BaseException:
        await _close(stream)
        raise


async def relay(stream: RoutedStream, first: Delta, events: StreamEvents) -> AsyncIterator[bytes]:
    """The encoded stream: ``first`` and every later delta, then :meth:`StreamEvents.end` with
    the usage the router recorded once the stream ended.

    An ember error after the first delta (:class:`~ember.errors.StreamInterrupted`) yields
    :meth:`StreamEvents.error` instead of the end; any other exception is logged and ends the
    stream with an ``internal`` error (no details). ``stream`` is closed in every case, also
    when the client goes away, so its usage row is written.
    """
    try:
        delta: Delta | None = first
        while delta is not None:
            for event in events.delta(delta):
                yield event
            delta = await anext(stream, None)
        for event in events.end(stream.usage or Usage()):
            yield event
    except EmberError as exc:
        for event in events.error(exc):
            yield event
    except Exception:
        log.exception("stream failed", extra={"provider": stream.provider})
        for event in events.error(EmberError()):
            yield event
    finally:
        await _close(stream)


def streaming_response(
    stream: RoutedStream,
    first: Delta,
    events: StreamEvents,
    media_type: str,
    slot: StreamSlot | None = None,
) -> StreamingResponse:
    """:func:`relay` as a response, with the provider and model headers; ``slot`` is released
    once the response ends."""
    headers = {"Cache-Control": "no-cache", **served_by(stream.provider, stream.model)}
    content = relay(stream, first, events)
    if slot is None:
        return StreamingResponse(content, media_type=media_type, headers=headers)
    return HeldStreamingResponse(content, slot=slot, media_type=media_type, headers=headers)


async def held(slot: StreamSlot, reply: Callable[[], Awaitable[Response]]) -> Response:
    """``reply()``, the streamed response that releases ``slot`` when it ends; ``slot`` is
    released at once when ``reply()`` fails (before the stream started)."""
    try:
        return await reply()
    except BaseException:
        slot.release()
        raise


async def _close(stream: RoutedStream) -> None:
    with anyio.CancelScope(shield=True):
        await stream.aclose()


def dialect_status(error: EmberError) -> int:
    """The HTTP status of ``error`` in these dialects: a body that fails validation is a 400,
    as OpenAI and Ollama answer it (ember's own routes say 422); others keep their status."""
    return 400 if isinstance(error, ValidationFailed) else error.status


def _validation_error(exc: RequestValidationError) -> ValidationFailed:
    errors = []
    for item in exc.errors():
        parts = [str(part) for part in item.get("loc", ())]
        path = ".".join(parts[1:] if parts[:1] == ["body"] else parts)
        errors.append({"path": path, "message": str(item.get("msg", "")), "type": item["type"]})
    detail = "; ".join(f"{e['path'] or 'body'}: {e['message']}" for e in errors[:5])
    param = errors[0]["path"] if errors else None
    return ValidationFailed(detail, errors=errors, extra={"param": param or None})


def dialect_route(
    render: ErrorRenderer, *, before: Callable[[Request], Awaitable[None]] | None = None
) -> type[APIRoute]:
    """A route class whose ember, validation and HTTP errors (the auth dependency's too) are
    answered by ``render`` instead of problem+json. ``before`` runs first on every request
    (before the body is parsed); what it raises is answered the same way."""

    class DialectRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()

            async def handle(request: Request) -> Response:
                try:
                    if before is not None:
                        await before(request)
                    return await handler(request)
                except EmberError as exc:
                    return render(exc)
                except RequestValidationError as exc:
                    return render(_validation_error(exc))
                except StarletteHTTPException as exc:
                    error = error_for_status(exc.status_code)(str(exc.detail), headers=exc.headers)
                    response = render(error)
                    response.status_code = exc.status_code
                    return response

            return handle

    return DialectRoute
