"""Every exception an ``ollama.AsyncClient`` call can raise, mapped into ember's error tree."""

from __future__ import annotations

import email.utils
import json
import math
import time
from collections.abc import Mapping
from typing import Any

import httpx
import ollama
import pydantic

from ember.errors import (
    ProviderAuthFailed,
    ProviderBadRequest,
    ProviderError,
    ProviderModelNotFound,
    ProviderRateLimited,
    ProviderTimeout,
    ProviderUnavailable,
)

__all__ = ["OLLAMA_ERRORS", "VENDOR_ERRORS", "provider_error"]

OLLAMA_ERRORS: Mapping[type[Exception], type[ProviderError]] = {
    ollama.ResponseError: ProviderError,
    ollama.RequestError: ProviderBadRequest,
    ConnectionError: ProviderUnavailable,
    json.JSONDecodeError: ProviderError,
    pydantic.ValidationError: ProviderError,
    httpx.HTTPError: ProviderError,
    httpx.HTTPStatusError: ProviderError,
    httpx.TooManyRedirects: ProviderError,
    httpx.RequestError: ProviderUnavailable,
    httpx.DecodingError: ProviderError,
    httpx.TransportError: ProviderUnavailable,
    httpx.UnsupportedProtocol: ProviderError,
    httpx.ProxyError: ProviderUnavailable,
    httpx.ProtocolError: ProviderUnavailable,
    httpx.LocalProtocolError: ProviderError,
    httpx.RemoteProtocolError: ProviderUnavailable,
    httpx.NetworkError: ProviderUnavailable,
    httpx.ConnectError: ProviderUnavailable,
    httpx.ReadError: ProviderUnavailable,
    httpx.WriteError: ProviderUnavailable,
    httpx.CloseError: ProviderUnavailable,
    httpx.TimeoutException: ProviderTimeout,
    httpx.ConnectTimeout: ProviderTimeout,
    httpx.ReadTimeout: ProviderTimeout,
    httpx.WriteTimeout: ProviderTimeout,
    httpx.PoolTimeout: ProviderTimeout,
}
"""Every exception class a call through ``ollama.AsyncClient`` can raise, mapped to ember's.

The most specific entry an exception is an instance of wins. The client raises its own
``ResponseError`` for HTTP errors (refined by status: 401/403 auth, 404 model not found, 429
rate limited, 5xx unavailable, other 4xx bad request; ``-1``, an error line inside a 200
stream, unavailable), ``ConnectionError`` when it cannot connect, and lets every other httpx
error (timeouts, a connection closed mid-stream) and an unreadable answer
(``JSONDecodeError``, pydantic's ``ValidationError``) through unchanged.
"""

VENDOR_ERRORS = tuple(OLLAMA_ERRORS)
"""The keys of :data:`OLLAMA_ERRORS`, for ``except`` clauses."""


def provider_error(exc: Exception, where: str) -> ProviderError:
    """ember's error for an exception of :data:`OLLAMA_ERRORS`; ``where`` names the call.

    ``extra`` carries the HTTP ``status`` when there was one, and ``retry_after_s`` when the
    server sent ``Retry-After``.
    """
    matches = [vendor for vendor in OLLAMA_ERRORS if isinstance(exc, vendor)]
    if not matches:
        return ProviderError(f"{where}: {type(exc).__name__}: {exc}")
    target = OLLAMA_ERRORS[max(matches, key=lambda cls: len(cls.__mro__))]
    extra: dict[str, Any] = {}
    if isinstance(exc, ollama.ResponseError):
        target = _by_status(exc.status_code)
        if exc.status_code > 0:
            extra["status"] = exc.status_code
        retry_after = _retry_after_s(exc)
        if retry_after is not None:
            extra["retry_after_s"] = retry_after
    return target(f"{where}: {exc}", extra=extra)


def _by_status(status: int) -> type[ProviderError]:
    if status in (401, 403):
        return ProviderAuthFailed
    if status == 404:
        return ProviderModelNotFound
    if status == 429:
        return ProviderRateLimited
    if status >= 500 or status < 0:
        return ProviderUnavailable
    if status >= 400:
        return ProviderBadRequest
    return ProviderError


def _retry_after_s(exc: ollama.ResponseError) -> float | None:
    """``Retry-After`` of the response an error was raised for.

    ``ResponseError`` keeps only the body and status, but the client raises it inside
    ``except httpx.HTTPStatusError``, so Python keeps that error, and its response, as
    ``__context__`` (``from None`` only hides it from tracebacks).
    """
    context = exc.__context__
    if not isinstance(context, httpx.HTTPStatusError):
        return None
    value = context.response.headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return max(0.0, seconds) if math.isfinite(seconds) else None
