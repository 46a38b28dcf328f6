"""Embeddings from an OpenAI-compatible server through the official ``openai`` client.

Covers OpenAI itself, vLLM, the llama.cpp server, LiteLLM and Ollama's ``/v1``. Nothing here
retries: the client's own retries are off by default and the router decides what to retry,
using the error class every ``openai`` exception is translated into (:data:`OPENAI_ERRORS`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
import openai

from ember.errors import (
    DimensionMismatch,
    ProviderAuthFailed,
    ProviderBadRequest,
    ProviderError,
    ProviderModelNotFound,
    ProviderRateLimited,
    ProviderTimeout,
    ProviderUnavailable,
)
from ember.observability.tracing import carrier
from ember.providers.vendor_errors import VendorErrors, translate

__all__ = [
    "OPENAI",
    "OPENAI_ERRORS",
    "OPENAI_URL",
    "OpenAIEmbedder",
    "is_openai",
    "openai_client",
    "provider_error",
]

OPENAI_ERRORS: Mapping[type[BaseException], type[ProviderError]] = {
    openai.OpenAIError: ProviderError,
    openai.APIError: ProviderError,
    openai.APIResponseValidationError: ProviderError,
    openai.APIConnectionError: ProviderUnavailable,
    openai.APITimeoutError: ProviderTimeout,
    openai.APIStatusError: ProviderError,
    openai.BadRequestError: ProviderBadRequest,
    openai.AuthenticationError: ProviderAuthFailed,
    openai.OAuthError: ProviderAuthFailed,
    openai.PermissionDeniedError: ProviderAuthFailed,
    openai.NotFoundError: ProviderModelNotFound,
    openai.ConflictError: ProviderError,
    openai.UnprocessableEntityError: ProviderBadRequest,
    openai.RateLimitError: ProviderRateLimited,
    openai.InternalServerError: ProviderUnavailable,
    openai.LengthFinishReasonError: ProviderError,
    openai.ContentFilterFinishReasonError: ProviderError,
    openai.WebSocketConnectionClosedError: ProviderUnavailable,
    openai.WebSocketQueueFullError: ProviderError,
}
"""Every exception class ``openai`` exports, mapped to ember's class for it.

The most specific entry an exception is an instance of wins. A bare ``APIStatusError`` (a
status the client has no class for) is refined by its status: 408 is a timeout, 5xx unavailable,
any other keeps ``ProviderError``.
"""


def _status(exc: BaseException) -> int | None:
    return exc.status_code if isinstance(exc, openai.APIStatusError) else None


def _headers(exc: BaseException) -> Mapping[str, str] | None:
    return exc.response.headers if isinstance(exc, openai.APIStatusError) else None


OPENAI = VendorErrors(
    OPENAI_ERRORS,
    refined=frozenset({openai.APIStatusError}),
    statuses={408: ProviderTimeout, range(500, 1000): ProviderUnavailable},
    status=_status,
    headers=_headers,
)
"""The table :func:`~ember.providers.vendor_errors.translate` applies to ``openai``'s errors."""

_NO_KEY = "no-key"
C = TypeVar("C", openai.OpenAI, openai.AsyncOpenAI)

OPENAI_URL = "https://api.openai.com/v1"
"""OpenAI's own API: the only server ``OPENAI_API_KEY`` is sent to unless configured."""


def is_openai(base_url: str | None) -> bool:
    """Whether ``base_url`` is OpenAI's own API (``None``: the client's default)."""
    return base_url is None or base_url.strip().rstrip("/").lower() == OPENAI_URL


def provider_error(exc: openai.OpenAIError, where: str) -> ProviderError:
    """ember's error for an ``openai`` exception; ``where`` names the call for the detail.

    ``extra`` carries the HTTP ``status`` when there was a response, and ``retry_after_s`` when
    the server sent ``Retry-After`` or ``retry-after-ms`` (see
    :func:`~ember.providers.vendor_errors.retry_after_s`).
    """
    return translate(exc, where, OPENAI)


def openai_client(
    factory: Callable[..., C],
    client: C | None,
    base_url: str | None,
    api_key: str | None,
    *,
    timeout_s: float,
    max_retries: int,
    where: str,
) -> C:
    """The ``openai`` client (``factory`` is ``OpenAI`` or ``AsyncOpenAI``) for a server, or
    the injected ``client``, with ember's timeout and retries.

    Without ``api_key``, OpenAI's own API (:func:`is_openai`) gets ``OPENAI_API_KEY``; any
    other server gets a placeholder key, never ``OPENAI_API_KEY`` (a local server needs none,
    and a third party must not receive OpenAI's key: configure its key explicitly).

    :raises ValueError: ``client`` comes with a URL or a key.
    :raises ProviderAuthFailed: no API key was given or found for OpenAI itself.
    """
    if client is not None and (base_url is not None or api_key is not None):
        raise ValueError("pass either client or base_url and api_key, not both")
    if client is None:
        if api_key is None:
            api_key = os.environ.get("OPENAI_API_KEY") if is_openai(base_url) else _NO_KEY
        try:
            client = factory(api_key=api_key, base_url=base_url)
        except openai.OpenAIError as exc:
            raise ProviderAuthFailed(f"{where}: {exc}") from exc
    configured: C = client.with_options(timeout=timeout_s, max_retries=max_retries)
    return configured


class OpenAIEmbedder:
    """An :class:`~ember.providers.protocol.Embedder` calling ``POST /v1/embeddings``.

    Texts go out in requests of at most ``batch_size`` inputs; each response item is placed by
    its ``index``, and every vector is L2-normalized again here (servers differ on that). The
    client's own retries are ``max_retries`` (0 by default) and every call times out after
    ``timeout_s``. ``model_id`` is ``openai:<model>``.

    ``api_key=None`` means ``OPENAI_API_KEY`` from the environment for OpenAI's own API, and
    a placeholder for any other ``base_url`` (see :func:`openai_client`). An injected
    ``client`` keeps its own URL and key (so ``base_url`` and ``api_key`` must then be
    ``None``) and is used with this embedder's timeout and retries.
    """

    def __init__(
        self,
        model: str,
        dim: int,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout_s: float = 30,
        batch_size: int = 256,
        client: openai.OpenAI | None = None,
        *,
        max_retries: int = 0,
    ) -> None:
        """Build the client; no request is sent.

        :raises ValueError: a setting is out of range, or ``client`` comes with a URL or key.
        :raises ProviderAuthFailed: no API key was given or found for OpenAI itself.
        """
        if dim < 1 or batch_size < 1 or timeout_s <= 0 or max_retries < 0:
            raise ValueError("dim and batch_size must be >= 1, timeout_s > 0, max_retries >= 0")
        self._client = openai_client(
            openai.OpenAI,
            client,
            base_url,
            api_key,
            timeout_s=timeout_s,
            max_retries=max_retries,
            where=f"openai client for {model!r}",
        )
        self._owns_client = client is None
        self._model = model
        self._dim = dim
        self._batch_size = batch_size
        self._where = f"embeddings with {model!r}"

    def close(self) -> None:
        """Close the connections of the client it made (an injected client stays open, its
        owner's to close); idempotent."""
        if self._owns_client:
            self._client.close()

    @property
    def model_id(self) -> str:
        """``openai:<model>``."""
        return f"openai:{self._model}"

    @property
    def dim(self) -> int:
        """The dimension the server must return."""
        return self._dim

    def embed_documents(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Embed passages: shape ``(len(texts), dim)``, float32, rows L2-normalized, in order.

        An empty input sends no request.

        :raises TypeError: ``texts`` is one ``str`` rather than a sequence of them.
        :raises DimensionMismatch: the server returned vectors of another dimension than ``dim``.
        :raises ProviderError: (a subclass of it) the call failed; see :data:`OPENAI_ERRORS`.
        """
        if isinstance(texts, str):
            raise TypeError("embed_documents takes a sequence of texts, not one str")
        items = list(texts)
        out = np.empty((len(items), self._dim), dtype=np.float32)
        for start in range(0, len(items), self._batch_size):
            batch = items[start : start + self._batch_size]
            out[start : start + len(batch)] = self._embed_batch(batch)
        return out

    def embed_query(self, text: str) -> npt.NDArray[np.float32]:
        """Embed one search query: shape ``(dim,)``, float32, L2-normalized.

        :raises DimensionMismatch: the server returned a vector of another dimension than ``dim``.
        :raises ProviderError: (a subclass of it) the call failed; see :data:`OPENAI_ERRORS`.
        """
        return self.embed_documents([text]).reshape(self._dim)

    def _embed_batch(self, batch: list[str]) -> npt.NDArray[np.float32]:
        try:
            headers = carrier()
            response = self._client.embeddings.create(
                model=self._model, input=batch, extra_headers=headers or None
            )
        except openai.OpenAIError as exc:
            raise provider_error(exc, self._where) from exc
        except ValueError as exc:
            raise ProviderError(f"{self._where}: unreadable response: {exc}") from exc
        rows: list[Any] = [None] * len(batch)
        data = getattr(response, "data", None)
        if not isinstance(data, list) or len(data) != len(batch):
            count = len(data) if isinstance(data, list) else 0
            raise ProviderError(f"{self._where}: {count} vectors for {len(batch)} inputs")
        for item in data:
            index = getattr(item, "index", None)
            vector = getattr(item, "embedding", None)
            if not isinstance(index, int) or not 0 <= index < len(batch) or rows[index] is not None:
                raise ProviderError(f"{self._where}: bad or repeated index {index!r}")
            if not isinstance(vector, list):
                raise ProviderError(f"{self._where}: item {index} has no vector")
            if len(vector) != self._dim:
                raise DimensionMismatch(
                    f"{self._where}: returned {len(vector)} dimensions, expected {self._dim}",
                    extra={"expected": self._dim, "got": len(vector)},
                )
            rows[index] = vector
        return self._normalized(np.asarray(rows, dtype=np.float32))

    def _normalized(self, matrix: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        if not np.all(np.isfinite(norms)) or np.any(norms == 0):
            raise ProviderError(f"{self._where}: returned a zero or non-finite vector")
        normalized: npt.NDArray[np.float32] = (matrix / norms).astype(np.float32)
        return normalized

    def __repr__(self) -> str:
        return f"OpenAIEmbedder(model={self._model!r}, base_url={str(self._client.base_url)!r})"
