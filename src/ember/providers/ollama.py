"""Chat, completions and embeddings from an Ollama server through the official ``ollama`` client.

Calls go to Ollama's native API: ``/api/chat`` and ``/api/generate`` (NDJSON when streamed),
``/api/embed`` and ``/api/tags``. Nothing here retries: the router decides, using the class
every exception the client raises is translated into (:data:`OLLAMA_ERRORS`, from
:mod:`ember.providers._ollama_errors`; the request and answer shapes are in
:mod:`ember.providers._ollama_wire`).

Timeouts: ``ollama.AsyncClient`` takes its timeout once, at construction. The provider keeps one
client (one connection pool) and sets each call's ``timeout_s`` on that call's HTTP request: a
request hook copies it from a context variable, set only around the code that sends the
request, into the request's ``timeout`` extension, which httpx honours per request. A timeout
bounds connecting, each read and each write, so a stream times out when no chunk arrives for
that long, not when the whole answer takes longer.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

import httpx
import ollama

from ember.chat import (
    Capability,
    ChatMessage,
    Completion,
    Delta,
    GenerationOptions,
    Health,
    ModelInfo,
)
from ember.errors import ProviderBadRequest, ProviderError, ProviderUnavailable
from ember.observability.tracing import traceparent_hook
from ember.providers import _ollama_wire as wire
from ember.providers._ollama_errors import OLLAMA_ERRORS, VENDOR_ERRORS, provider_error

__all__ = ["OLLAMA_ERRORS", "OllamaProvider", "provider_error"]

_DEFAULT_HOST = "http://127.0.0.1:11434"
_T = TypeVar("_T")


class OllamaProvider:
    """A :class:`~ember.providers.protocol.Provider` for an Ollama server's native API.

    ``host`` is the server (``OLLAMA_HOST``, else ``http://127.0.0.1:11434``, when ``None``);
    ``OLLAMA_API_KEY``, when set, goes as a bearer token (the client's rule). ``timeout_s``
    bounds every call whose options give none (embed and list calls always); :meth:`health`
    uses ``health_timeout_s``. ``keep_alive`` is sent with model calls (how long Ollama keeps
    the model loaded; ``None`` is the server's default). ``transport`` replaces the HTTP
    transport (a proxy, a mock); hooks and timeouts stay.

    Options map to Ollama's ``options``: ``max_tokens`` to ``num_predict``, and ``temperature``,
    ``top_p``, ``stop`` and ``seed`` as they are; ``tools`` pass through in the OpenAI shape.
    An assistant turn's tool calls (:class:`~ember.chat.ToolCall`) go with their arguments as
    an object (arguments that are no JSON object are a ``ProviderBadRequest``); a ``tool``
    message's name comes from its ``name`` or its ``tool_call_id``'s call. Answer tool calls
    get ids ``call_<n>``, counted per answer, so a stream's parallel calls (one per part) stay
    apart. ``finish_reason`` is Ollama's ``done_reason`` (``stop``, ``length``, ...); usage is
    ``prompt_eval_count`` and ``eval_count``.
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
            "event_hooks": {"request": [wire.apply_call_timeout, traceparent_hook]},
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
            with wire.call_timeout(options.timeout_s):
                reply = await self._client.chat(
                    model,
                    wire.messages(messages),
                    tools=options.tools,
                    stream=False,
                    options=wire.options(options),
                    keep_alive=self._keep(options),
                )
        except VENDOR_ERRORS as exc:
            raise provider_error(exc, where) from exc
        return Completion(
            text=reply.message.content or "",
            model=reply.model or model,
            provider=self._name,
            finish_reason=reply.done_reason or "stop",
            usage=wire.usage(reply),
            tool_calls=wire.tool_calls(reply.message, 0),
        )

    async def stream_chat(
        self, model: str, messages: Sequence[ChatMessage], options: GenerationOptions
    ) -> AsyncIterator[Delta]:
        """``POST /api/chat``, streamed; errors, before or after the first delta, raise here."""
        calls = 0

        def delta(part: ollama.ChatResponse) -> Delta | None:
            nonlocal calls
            tool_calls = wire.tool_calls(part.message, calls)
            calls += len(tool_calls or ())
            return wire.delta(part, part.message.content or "", tool_calls)

        def start() -> Awaitable[AsyncIterator[ollama.ChatResponse]]:
            return self._client.chat(
                model,
                wire.messages(messages),
                tools=options.tools,
                stream=True,
                options=wire.options(options),
                keep_alive=self._keep(options),
            )

        async for item in self._stream(self._where("chat", model), start, delta, options):
            yield item

    async def generate(self, model: str, prompt: str, options: GenerationOptions) -> Completion:
        """``POST /api/generate`` without streaming."""
        where = self._where("generate", model)
        try:
            with wire.call_timeout(options.timeout_s):
                reply = await self._client.generate(
                    model,
                    prompt,
                    stream=False,
                    options=wire.options(options),
                    keep_alive=self._keep(options),
                )
        except VENDOR_ERRORS as exc:
            raise provider_error(exc, where) from exc
        return Completion(
            text=reply.response or "",
            model=reply.model or model,
            provider=self._name,
            finish_reason=reply.done_reason or "stop",
            usage=wire.usage(reply),
        )

    async def stream_generate(
        self, model: str, prompt: str, options: GenerationOptions
    ) -> AsyncIterator[Delta]:
        """``POST /api/generate``, streamed."""

        def start() -> Awaitable[AsyncIterator[ollama.GenerateResponse]]:
            return self._client.generate(
                model,
                prompt,
                stream=True,
                options=wire.options(options),
                keep_alive=self._keep(options),
            )

        def delta(part: ollama.GenerateResponse) -> Delta | None:
            return wire.delta(part, part.response or "", None)

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
        except VENDOR_ERRORS as exc:
            raise provider_error(exc, where) from exc
        vectors = [[float(x) for x in vector] for vector in reply.embeddings]
        if len(vectors) != len(items):
            raise ProviderError(f"{where}: {len(vectors)} vectors for {len(items)} inputs")
        return vectors

    async def list_models(self) -> list[ModelInfo]:
        """``GET /api/tags``: name, digest, size in bytes and Ollama's ``details`` of each."""
        where = "ollama list"
        try:
            listed = await self._client.list()
        except VENDOR_ERRORS as exc:
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
            with wire.call_timeout(self._health_timeout_s):
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
            with wire.call_timeout(options.timeout_s):
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
        except VENDOR_ERRORS as exc:
            raise provider_error(exc, where) from exc
        finally:
            if isinstance(parts, AsyncGenerator):
                await parts.aclose()

    def _keep(self, options: GenerationOptions) -> float | str | None:
        """The call's ``keep_alive`` (seconds), else the configured one."""
        return self._keep_alive if options.keep_alive_s is None else options.keep_alive_s

    def _where(self, call: str, model: str) -> str:
        if not model:
            raise ProviderBadRequest(f"ollama {call}: no model given")
        return f"ollama {call} with {model!r}"

    def __repr__(self) -> str:
        return f"OllamaProvider(host={self._host!r}, name={self._name!r})"
