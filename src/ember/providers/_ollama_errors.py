"""Every exception an ``ollama.AsyncClient`` call can raise, mapped into ember's error tree.

The table is Ollama's; the rule that applies it is :func:`ember.providers.vendor_errors.translate`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

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
from ember.providers.vendor_errors import VendorErrors, translate

__all__ = ["OLLAMA", "OLLAMA_ERRORS", "VENDOR_ERRORS", "provider_error"]

OLLAMA_ERRORS: Mapping[type[BaseException], type[ProviderError]] = {
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


def _status(exc: BaseException) -> int | None:
    return exc.status_code if isinstance(exc, ollama.ResponseError) else None


def _response_headers(exc: BaseException) -> Mapping[str, str] | None:
    """The headers of the response a ``ResponseError`` was raised for.

    ``ResponseError`` keeps only the body and status, but the client raises it inside
    ``except httpx.HTTPStatusError``, so Python keeps that error, and its response, as
    ``__context__`` (``from None`` only hides it from tracebacks).
    """
    if not isinstance(exc, ollama.ResponseError):
        return None
    context = exc.__context__
    return context.response.headers if isinstance(context, httpx.HTTPStatusError) else None


OLLAMA = VendorErrors(
    OLLAMA_ERRORS,
    refined=frozenset({ollama.ResponseError}),
    statuses={
        401: ProviderAuthFailed,
        403: ProviderAuthFailed,
        404: ProviderModelNotFound,
        429: ProviderRateLimited,
        -1: ProviderUnavailable,
        range(500, 1000): ProviderUnavailable,
        range(400, 500): ProviderBadRequest,
    },
    status=_status,
    headers=_response_headers,
)
"""The table :func:`~ember.providers.vendor_errors.translate` applies to Ollama's errors."""

VENDOR_ERRORS = OLLAMA.catches
"""The keys of :data:`OLLAMA_ERRORS`, for ``except`` clauses."""


def provider_error(exc: BaseException, where: str) -> ProviderError:
    """ember's error for an exception of :data:`OLLAMA_ERRORS`; ``where`` names the call.

    ``extra`` carries the HTTP ``status`` when there was one, and ``retry_after_s`` when the
    server sent ``Retry-After`` (see :func:`~ember.providers.vendor_errors.retry_after_s`).
    """
    return translate(exc, where, OLLAMA)
