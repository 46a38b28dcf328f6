"""Chat, completions and embeddings from an Ollama server through the official ``ollama`` client.

Calls go to Ollama's native API: ``/api/chat`` and ``/api/generate`` (NDJSON when streamed),
``/api/embed`` and ``/api/tags``. Nothing here retries: the router decides, using the class
every exception the client raises is translated into (:data:`OLLAMA_ERRORS`).

Timeouts: ``ollama.AsyncClient`` takes its timeout once, at construction. The provider keeps one
client (one connection pool) and sets each call's ``timeout_s`` on that call's HTTP request: a
request hook copies it from a context variable, set only around the code that sends the
request, into the request's ``timeout`` extension, which httpx honours per request. A timeout
bounds connecting, each read and each write, so a stream times out when no chunk arrives for
that long, not when the whole answer takes longer.
"""

from __future__ import annotations

import contextlib
import contextvars
import email.utils
import json
import math
import os
import time
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterator,
    Mapping,
    Sequence,
)
from typing import Any, TypeVar

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
from ember.providers.types import (
    Capability,
    ChatMessage,
    Completion,
    Delta,
    GenerationOptions,
    Health,
    ModelInfo,
    Usage,
)

__all__ = ["OLLAMA_ERRORS", "OllamaProvider", "provider_error"]

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

_VENDOR_ERRORS = tuple(OLLAMA_ERRORS)
_DEFAULT_HOST = "http://127.0.0.1:11434"
_CALL_TIMEOUT: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "ember_ollama_call_timeout", default=None
)
_T = TypeVar("_T")


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


async def _apply_call_timeout(request: httpx.Request) -> None:
    """httpx request hook: give the request the current call's timeout, when it has one."""
    seconds = _CALL_TIMEOUT.get()
    if seconds is not None:
        request.extensions["timeout"] = httpx.Timeout(seconds).as_dict()


@contextlib.contextmanager
def _call_timeout(seconds: float | None) -> Iterator[None]:
    token = _CALL_TIMEOUT.set(seconds)
    try:
        yield
    finally:
        _CALL_TIMEOUT.reset(token)


class OllamaProvider:
    """A :class:`~ember.providers.protocol.Provider` for an Ollama server's native API.

    ``host`` is the server (``OLLAMA_HOST``, else ``http://127.0.0.1:11434``, when ``None``);
    ``OLLAMA_API_KEY``, when set, goes as a bearer token (the client's rule). ``timeout_s``
    bounds every call whose options give none (embed and list calls always); :meth:`health`
    uses ``health_timeout_s``. ``keep_alive`` is sent with model calls (how long Ollama keeps
    the model loaded; ``None`` is the server's default). ``transport`` replaces the HTTP
    transport (a proxy, a mock); hooks and timeouts stay.

    Options map to Ollama's ``options``: ``max_tokens`` to ``num_predict``, and ``temperature``,
    ``top_p``, ``stop`` and ``seed`` as they are; ``tools`` and assistant ``tool_calls`` pass
    through in the OpenAI shape (arguments as a JSON string outside, an object to Ollama; a
    ``tool`` message's name comes from its ``name`` or its ``tool_call_id``'s call). Answer tool
    calls get ids ``call_<n>``, counted per answer. ``finish_reason`` is Ollama's
    ``done_reason`` (``stop``, ``length``, ...); usage is ``prompt_eval_count`` and
    ``eval_count``.
    """

    def __init__(
        self,
        host: str | None = None,
        *,
        name: str = "ollama",
        timeout_s: float = 120.0,
        health_timeout_s: float = 2.0,
        keep_alive: float | str | None = None,
        headers: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """Build the client; no request is sent.

        :raises ValueError: a timeout is not positive, ``name`` is empty or ``host`` is no URL.
        """
        if timeout_s <= 0 or health_timeout_s <= 0 or not name:
            raise ValueError("timeouts must be > 0 and name not empty")
        settings: dict[str, Any] = {
            "timeout": httpx.Timeout(timeout_s),
            "event_hooks": {"request": [_apply_call_timeout]},
        }
        if transport is not None:
            settings["transport"] = transport
        try:
            self._client = ollama.AsyncClient(host, headers=headers, **settings)
        except httpx.InvalidURL as exc:
            raise ValueError(f"not an Ollama host: {host!r}") from exc
        self._host = host or os.environ.get("OLLAMA_HOST") or _DEFAULT_HOST
        self._name = name
        self._health_timeout_s = health_timeout_s
        self._keep_alive = keep_alive

    @property
    def name(self) -> str:
        """The configured name (``ollama`` by default)."""
        return self._name

    @property
    def capabilities(self) -> frozenset[Capability]:
        """Everything: chat, generate, embed, streams and tools."""
        return frozenset(Capability)

    async def chat(
        self, model: str, messages: Sequence[ChatMessage], options: GenerationOptions
    ) -> Completion:
        """``POST /api/chat`` without streaming; see :data:`OLLAMA_ERRORS` for what it raises."""
        where = self._where("chat", model)
        try:
            with _call_timeout(options.timeout_s):
                reply = await self._client.chat(
                    model,
                    _messages(messages),
                    tools=options.tools,
                    stream=False,
                    options=_options(options),
                    keep_alive=self._keep_alive,
                )
        except _VENDOR_ERRORS as exc:
            raise provider_error(exc, where) from exc
        return Completion(
            text=reply.message.content or "",
            model=reply.model or model,
            provider=self._name,
            finish_reason=reply.done_reason or "stop",
            usage=_usage(reply),
            tool_calls=_tool_calls(reply.message, 0),
        )

    async def stream_chat(
        self, model: str, messages: Sequence[ChatMessage], options: GenerationOptions
    ) -> AsyncIterator[Delta]:
        """``POST /api/chat``, streamed; errors, before or after the first delta, raise here."""
        calls = 0

        def delta(part: ollama.ChatResponse) -> Delta | None:
            nonlocal calls
            tool_calls = _tool_calls(part.message, calls)
            calls += len(tool_calls or ())
            return _delta(part, part.message.content or "", tool_calls)

        def start() -> Awaitable[AsyncIterator[ollama.ChatResponse]]:
            return self._client.chat(
                model,
                _messages(messages),
                tools=options.tools,
                stream=True,
                options=_options(options),
                keep_alive=self._keep_alive,
            )

        async for item in self._stream(self._where("chat", model), start, delta, options):
            yield item

    async def generate(self, model: str, prompt: str, options: GenerationOptions) -> Completion:
        """``POST /api/generate`` without streaming."""
        where = self._where("generate", model)
        try:
            with _call_timeout(options.timeout_s):
                reply = await self._client.generate(
                    model,
                    prompt,
                    stream=False,
                    options=_options(options),
                    keep_alive=self._keep_alive,
                )
        except _VENDOR_ERRORS as exc:
            raise provider_error(exc, where) from exc
        return Completion(
            text=reply.response or "",
            model=reply.model or model,
            provider=self._name,
            finish_reason=reply.done_reason or "stop",
            usage=_usage(reply),
        )

    async def stream_generate(
        self, model: str, prompt: str, options: GenerationOptions
    ) -> AsyncIterator[Delta]:
        """``POST /api/generate``, streamed."""

        def start() -> Awaitable[AsyncIterator[ollama.GenerateResponse]]:
            return self._client.generate(
                model, prompt, stream=True, options=_options(options), keep_alive=self._keep_alive
            )

        def delta(part: ollama.GenerateResponse) -> Delta | None:
            return _delta(part, part.response or "", None)

        async for item in self._stream(self._where("generate", model), start, delta, options):
            yield item

    async def embed(self, model: str, texts: Sequence[str]) -> list[list[float]]:
        """``POST /api/embed``: one vector per text, in order (as Ollama returns them).

        An empty input sends no request.

        :raises TypeError: ``texts`` is one ``str`` rather than a sequence of them.
        """
        if isinstance(texts, str):
            raise TypeError("embed takes a sequence of texts, not one str")
        items = list(texts)
        if not items:
            return []
        where = self._where("embed", model)
        try:
            reply = await self._client.embed(model, items, keep_alive=self._keep_alive)
        except _VENDOR_ERRORS as exc:
            raise provider_error(exc, where) from exc
        vectors = [[float(x) for x in vector] for vector in reply.embeddings]
        if len(vectors) != len(items):
            raise ProviderError(f"{where}: {len(vectors)} vectors for {len(items)} inputs")
        return vectors

    async def list_models(self) -> list[ModelInfo]:
        """``GET /api/tags``: name, digest, size in bytes and Ollama's ``details`` of each."""
        where = f"ollama list at {self._host}"
        try:
            listed = await self._client.list()
        except _VENDOR_ERRORS as exc:
            raise provider_error(exc, where) from exc
        return [
            ModelInfo(
                name=item.model,
                provider=self._name,
                digest=item.digest,
                size_bytes=int(item.size) if item.size is not None else None,
                details=item.details.model_dump(exclude_none=True) if item.details else {},
            )
            for item in listed.models
            if item.model
        ]

    async def health(self) -> Health:
        """``GET /api/tags`` within ``health_timeout_s``; never raises."""
        started = time.perf_counter()
        try:
            with _call_timeout(self._health_timeout_s):
                listed = await self._client.list()
        except Exception as exc:
            return Health(ok=False, detail=str(provider_error(exc, f"ollama at {self._host}")))
        latency_ms = (time.perf_counter() - started) * 1000
        detail = f"{len(listed.models)} models at {self._host}"
        return Health(ok=True, detail=detail, latency_ms=latency_ms)

    async def aclose(self) -> None:
        """Close the client's connections."""
        await self._client.close()  # type: ignore[no-untyped-call]

    async def _stream(
        self,
        where: str,
        start: Callable[[], Awaitable[AsyncIterator[_T]]],
        delta: Callable[[_T], Delta | None],
        options: GenerationOptions,
    ) -> AsyncIterator[Delta]:
        """The deltas of a streamed call; the request goes out at the first ``anext``, so the
        call's timeout is set around that, never across a ``yield``."""
        parts: AsyncIterator[_T] | None = None
        try:
            with _call_timeout(options.timeout_s):
                parts = await start()
                part = await anext(parts, None)
            finished = False
            while part is not None:
                item = delta(part)
                if item is not None:
                    finished = finished or item.finish_reason is not None
                    yield item
                part = await anext(parts, None)
            if not finished:
                raise ProviderUnavailable(f"{where}: the stream ended before its last part")
        except _VENDOR_ERRORS as exc:
            raise provider_error(exc, where) from exc
        finally:
            if isinstance(parts, AsyncGenerator):
                await parts.aclose()

    def _where(self, call: str, model: str) -> str:
        if not model:
            raise ProviderBadRequest(f"ollama {call} at {self._host}: no model given")
        return f"ollama {call} with {model!r} at {self._host}"

    def __repr__(self) -> str:
        return f"OllamaProvider(host={self._host!r}, name={self._name!r})"


def _options(options: GenerationOptions) -> dict[str, Any] | None:
    values: dict[str, Any] = {
        "num_predict": options.max_tokens,
        "temperature": options.temperature,
        "top_p": options.top_p,
        "stop": list(options.stop) or None,
        "seed": options.seed,
    }
    chosen = {key: value for key, value in values.items() if value is not None}
    return chosen or None


def _usage(reply: ollama.ChatResponse | ollama.GenerateResponse) -> Usage:
    return Usage(reply.prompt_eval_count or 0, reply.eval_count or 0)


def _delta(
    part: ollama.ChatResponse | ollama.GenerateResponse,
    text: str,
    tool_calls: list[dict[str, Any]] | None,
) -> Delta | None:
    """A part as a delta: the last one (``done``) always, others only when they carry
    something (thinking-only parts carry nothing of the answer)."""
    if part.done:
        finish = part.done_reason or "stop"
        return Delta(text, finish_reason=finish, usage=_usage(part), tool_calls=tool_calls)
    return Delta(text, tool_calls=tool_calls) if text or tool_calls else None


def _messages(messages: Sequence[ChatMessage]) -> list[dict[str, Any]]:
    """ember's messages in Ollama's shape; OpenAI-shaped tool calls become Ollama's."""
    call_names: dict[str, str] = {}
    out: list[dict[str, Any]] = []
    for message in messages:
        item: dict[str, Any] = {"role": message.role, "content": message.content}
        if message.tool_calls:
            calls = []
            for call in message.tool_calls:
                function = call.get("function") or {}
                name = function.get("name")
                if isinstance(call.get("id"), str) and isinstance(name, str):
                    call_names[call["id"]] = name
                arguments = _arguments(function.get("arguments"))
                calls.append({"function": {"name": name, "arguments": arguments}})
            item["tool_calls"] = calls
        if message.role == "tool":
            tool_name = message.name or call_names.get(message.tool_call_id or "")
            if tool_name:
                item["tool_name"] = tool_name
        out.append(item)
    return out


def _arguments(value: object) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else {}
        except json.JSONDecodeError as exc:
            raise ProviderBadRequest(f"tool call arguments are not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise ProviderBadRequest("tool call arguments must be a JSON object")
    return value


def _tool_calls(message: ollama.Message, first: int) -> list[dict[str, Any]] | None:
    """Ollama's tool calls in the OpenAI shape, numbered from ``first``."""
    if not message.tool_calls:
        return None
    return [
        {
            "id": f"call_{first + index}",
            "type": "function",
            "function": {
                "name": call.function.name,
                "arguments": json.dumps(dict(call.function.arguments)),
            },
        }
        for index, call in enumerate(message.tool_calls)
    ]
