"""Chat, completions and embeddings from an OpenAI-compatible server (the official client).

Covers OpenAI itself, vLLM, the llama.cpp server, LiteLLM and Ollama's ``/v1``: ``chat`` and
``stream_chat`` call ``/v1/chat/completions``, ``generate`` and ``stream_generate`` call
``/v1/completions``, ``embed`` calls ``/v1/embeddings`` and ``list_models`` ``/v1/models``.
Nothing here retries: the client's own retries are off by default and every ``openai``
exception, including those raised while a stream is read, is translated with
:func:`~ember.providers.openai_embeddings.provider_error`. Every call sends the current span's
W3C ``traceparent``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import openai
from openai.types import Completion as OpenAICompletion
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from ember.chat import (
    Capability,
    ChatMessage,
    Completion,
    Delta,
    GenerationOptions,
    Health,
    ModelInfo,
    ToolCall,
    Usage,
)
from ember.errors import ProviderBadRequest, ProviderError
from ember.observability.tracing import carrier
from ember.providers.openai_embeddings import openai_client, provider_error

__all__ = ["DEFAULT_CAPABILITIES", "OpenAIProvider"]

DEFAULT_CAPABILITIES = frozenset(
    {Capability.CHAT, Capability.GENERATE, Capability.EMBED, Capability.STREAM, Capability.TOOLS}
)
"""What an OpenAI-compatible server is assumed to support unless configured otherwise."""

_T = TypeVar("_T")


@dataclass(frozen=True)
class _Piece:
    """What one stream chunk says about choice 0, and the usage it reports."""

    text: str
    finish_reason: str | None
    tool_calls: list[dict[str, Any]]
    usage: Usage | None


class OpenAIProvider:
    """A :class:`~ember.providers.protocol.Provider` over ``openai.AsyncOpenAI``.

    ``api_key=None`` means ``OPENAI_API_KEY`` for OpenAI's own API only; any other server
    given by ``base_url`` gets a placeholder, never ``OPENAI_API_KEY``. Every call times out
    after ``timeout_s`` (``GenerationOptions.timeout_s`` overrides it per call; for a stream it
    bounds the connect and each wait between chunks) and the client retries ``max_retries``
    times (0 by default). An injected ``client`` keeps its URL and key (``base_url`` and
    ``api_key`` must then be ``None``), gets this provider's timeout and retries, and is closed
    by :meth:`aclose`.

    Tool definitions (``GenerationOptions.tools``) and the messages' ``tool_calls`` and
    ``tool_call_id`` go out in the OpenAI shape; the tool calls of an answer come back as
    :class:`~ember.chat.ToolCall`: on the :class:`Completion`, or assembled from their fragments
    on a stream's last :class:`Delta`, which also has the finish reason and the final usage
    chunk's usage. Arguments that are not a JSON object are kept as the model wrote them.
    """

    def __init__(
        self,
        name: str = "openai",
        base_url: str | None = None,
        api_key: str | None = None,
        timeout_s: float = 60.0,
        *,
        max_retries: int = 0,
        capabilities: Iterable[Capability] = DEFAULT_CAPABILITIES,
        health_timeout_s: float = 2.0,
        client: openai.AsyncOpenAI | None = None,
    ) -> None:
        """Build the client; no request is sent.

        :raises ValueError: a setting is out of range, or ``client`` comes with a URL or key.
        :raises ProviderAuthFailed: no API key was given or found for OpenAI itself.
        """
        if not name or timeout_s <= 0 or health_timeout_s <= 0 or max_retries < 0:
            raise ValueError("name must be set, timeouts > 0 and max_retries >= 0")
        self._client = openai_client(
            openai.AsyncOpenAI,
            client,
            base_url,
            api_key,
            timeout_s=timeout_s,
            max_retries=max_retries,
            where=f"{name}: openai client",
        )
        self._name = name
        self._capabilities = frozenset(capabilities)
        self._health_timeout_s = health_timeout_s

    @property
    def name(self) -> str:
        """The configured name."""
        return self._name

    @property
    def capabilities(self) -> frozenset[Capability]:
        """The configured capabilities (all five by default)."""
        return self._capabilities

    async def chat(
        self, model: str, messages: Sequence[ChatMessage], options: GenerationOptions
    ) -> Completion:
        """``POST /v1/chat/completions``: the whole answer, its tool calls and usage."""
        where = self._where("chat", model)
        params = self._chat_params(model, messages, options)
        response: ChatCompletion = await self._call(
            where, lambda: self._client.chat.completions.create(**params)
        )
        if not response.choices:
            raise ProviderError(f"{where}: the answer has no choices")
        choice = response.choices[0]
        tool_calls = _tool_calls(
            where, [call.model_dump(exclude_none=True) for call in choice.message.tool_calls or []]
        )
        return Completion(
            text=choice.message.content or "",
            model=response.model,
            provider=self._name,
            finish_reason=choice.finish_reason,
            usage=_usage(response.usage),
            tool_calls=tool_calls,
        )

    async def stream_chat(
        self, model: str, messages: Sequence[ChatMessage], options: GenerationOptions
    ) -> AsyncIterator[Delta]:
        """:meth:`chat`, streamed; errors raise from the iterator, before or after a delta."""
        self._require(Capability.STREAM)
        where = self._where("chat stream", model)
        params = self._chat_params(model, messages, options)
        params.update(stream=True, stream_options={"include_usage": True})
        async for delta in self._deltas(
            where, lambda: self._client.chat.completions.create(**params), _chat_piece
        ):
            yield delta

    async def generate(self, model: str, prompt: str, options: GenerationOptions) -> Completion:
        """``POST /v1/completions``: a plain completion of ``prompt``."""
        where = self._where("completion", model)
        params = self._completion_params(model, prompt, options)
        response: OpenAICompletion = await self._call(
            where, lambda: self._client.completions.create(**params)
        )
        if not response.choices:
            raise ProviderError(f"{where}: the answer has no choices")
        choice = response.choices[0]
        return Completion(
            text=choice.text,
            model=response.model,
            provider=self._name,
            finish_reason=choice.finish_reason,
            usage=_usage(response.usage),
        )

    async def stream_generate(
        self, model: str, prompt: str, options: GenerationOptions
    ) -> AsyncIterator[Delta]:
        """:meth:`generate`, streamed; errors raise from the iterator."""
        self._require(Capability.STREAM)
        where = self._where("completion stream", model)
        params = self._completion_params(model, prompt, options)
        params.update(stream=True, stream_options={"include_usage": True})
        async for delta in self._deltas(
            where, lambda: self._client.completions.create(**params), _completion_piece
        ):
            yield delta

    async def embed(self, model: str, texts: Sequence[str]) -> list[list[float]]:
        """``POST /v1/embeddings``: the server's vectors, in input order (not renormalized).

        An empty input sends no request.
        """
        self._require(Capability.EMBED)
        if isinstance(texts, str):
            raise TypeError("embed takes a sequence of texts, not one str")
        items = list(texts)
        if not items:
            return []
        where = self._where("embeddings", model)
        response = await self._call(
            where,
            lambda: self._client.embeddings.create(
                model=model, input=items, encoding_format="float", **_traced()
            ),
        )
        rows: list[list[float] | None] = [None] * len(items)
        for item in response.data:
            if not 0 <= item.index < len(items) or rows[item.index] is not None:
                raise ProviderError(f"{where}: bad or repeated index {item.index!r}")
            rows[item.index] = [float(x) for x in item.embedding]
        vectors = [row for row in rows if row is not None]
        if len(vectors) != len(items):
            raise ProviderError(f"{where}: {len(vectors)} vectors for {len(items)} inputs")
        return vectors

    async def list_models(self) -> list[ModelInfo]:
        """``GET /v1/models``, every page."""
        where = self._where("models", None)

        async def collect() -> list[ModelInfo]:
            return [
                ModelInfo(
                    name=model.id,
                    provider=self._name,
                    details={"owned_by": model.owned_by, "created": model.created},
                )
                async for model in self._client.models.list()
            ]

        return await self._call(where, collect)

    async def health(self) -> Health:
        """One ``GET /v1/models`` within ``health_timeout_s``; never raises."""
        started = time.perf_counter()
        try:
            page = await self._client.models.list(timeout=self._health_timeout_s)
        except openai.OpenAIError as exc:
            return Health(ok=False, detail=str(provider_error(exc, self._where("health", None))))
        except Exception as exc:
            return Health(ok=False, detail=f"{self._where('health', None)}: {exc!r}")
        latency_ms = (time.perf_counter() - started) * 1000
        return Health(ok=True, detail=f"{len(page.data)} models", latency_ms=latency_ms)

    async def aclose(self) -> None:
        """Close the client and its connections."""
        await self._client.close()

    def _where(self, call: str, model: str | None) -> str:
        about = f" with {model!r}" if model is not None else ""
        return f"{self._name} {call}{about}"

    def _require(self, capability: Capability) -> None:
        if capability not in self._capabilities:
            raise ProviderBadRequest(f"{self._name} does not declare {capability.value}")

    def _chat_params(
        self, model: str, messages: Sequence[ChatMessage], options: GenerationOptions
    ) -> dict[str, Any]:
        self._require(Capability.CHAT)
        params = self._call_options(options)
        if options.tools:
            self._require(Capability.TOOLS)
            params["tools"] = options.tools
        return {"model": model, "messages": [m.to_openai() for m in messages], **params}

    def _completion_params(
        self, model: str, prompt: str, options: GenerationOptions
    ) -> dict[str, Any]:
        self._require(Capability.GENERATE)
        return {"model": model, "prompt": prompt, **self._call_options(options)}

    def _call_options(self, options: GenerationOptions) -> dict[str, Any]:
        given = {
            "max_tokens": options.max_tokens,
            "temperature": options.temperature,
            "top_p": options.top_p,
            "seed": options.seed,
            "stop": list(options.stop) or None,
            "timeout": options.timeout_s,
        }
        params: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
        return params | _traced()

    async def _call(self, where: str, send: Callable[[], Awaitable[_T]]) -> _T:
        try:
            return await send()
        except openai.OpenAIError as exc:
            raise provider_error(exc, where) from exc
        except ValueError as exc:
            raise ProviderError(f"{where}: unreadable response: {exc}") from exc

    async def _deltas(
        self,
        where: str,
        open_stream: Callable[[], Awaitable[openai.AsyncStream[Any]]],
        read: Callable[[Any], _Piece],
    ) -> AsyncIterator[Delta]:
        """Text deltas as they come; the last one holds finish reason, tool calls and usage."""
        stream = await self._call(where, open_stream)
        tail: list[str] = []
        finish_reason: str | None = None
        usage: Usage | None = None
        calls = _ToolCallParts()
        try:
            while True:
                try:
                    chunk = await stream.__anext__()
                except StopAsyncIteration:
                    break
                except openai.OpenAIError as exc:
                    raise provider_error(exc, where) from exc
                except ValueError as exc:
                    raise ProviderError(f"{where}: unreadable chunk: {exc}") from exc
                piece = read(chunk)
                usage = piece.usage or usage
                calls.add(where, piece.tool_calls)
                finish_reason = piece.finish_reason or finish_reason
                if finish_reason is not None:
                    tail.append(piece.text)
                elif piece.text:
                    yield Delta(piece.text)
        finally:
            await stream.close()
        if finish_reason is not None or usage is not None or calls:
            yield Delta("".join(tail), finish_reason, usage, calls.assembled() or None)


class _ToolCallParts:
    """Tool calls of a stream, put together from their fragments.

    A fragment continues the call last started at its ``index``, unless it brings an ``id``
    other than that call's, or a function ``name`` when that call has one already: then it
    starts a new call. OpenAI sends a call's ``id`` and name on its first fragment only, and
    its arguments in pieces under one ``index``; Ollama's ``/v1`` and other compatible servers
    send each call whole in one fragment, every one of them at ``index`` 0, some without an
    ``id``. Calls come out by ``index``, those at one index in the order they started.
    """

    def __init__(self) -> None:
        self._started: list[tuple[int, dict[str, str]]] = []
        self._open: dict[int, dict[str, str]] = {}

    def __bool__(self) -> bool:
        return bool(self._started)

    def add(self, where: str, fragments: list[dict[str, Any]]) -> None:
        for fragment in fragments:
            index = fragment.get("index", 0)
            if not isinstance(index, int):
                raise ProviderError(f"{where}: a tool call fragment without an index")
            call = self._open.get(index)
            new_id = fragment.get("id") or ""
            function = fragment.get("function") or {}
            renamed = bool(function.get("name")) and call is not None and bool(call["name"])
            if call is None or renamed or (new_id and call["id"] and new_id != call["id"]):
                call = {"id": "", "name": "", "arguments": ""}
                self._open[index] = call
                self._started.append((index, call))
            call["id"] = new_id or call["id"]
            call["name"] = function.get("name") or call["name"]
            call["arguments"] += function.get("arguments") or ""

    def assembled(self) -> list[ToolCall]:
        ordered = sorted(self._started, key=lambda started: started[0])
        return [ToolCall.parse(c["id"], c["name"], c["arguments"]) for _, c in ordered]


def _tool_calls(where: str, calls: list[dict[str, Any]]) -> list[ToolCall] | None:
    """An answer's tool calls (OpenAI's shape) as ember's; ``None`` when there are none.

    :raises ProviderError: a call is not a function call ember can read.
    """
    try:
        return [ToolCall.from_openai(call) for call in calls] or None
    except ValueError as exc:
        raise ProviderError(f"{where}: unreadable tool call: {exc}") from exc


def _usage(usage: Any) -> Usage:
    if usage is None:
        return Usage()
    return Usage(
        prompt_tokens=usage.prompt_tokens or 0, completion_tokens=usage.completion_tokens or 0
    )


def _chat_piece(chunk: ChatCompletionChunk) -> _Piece:
    usage = _usage(chunk.usage) if chunk.usage is not None else None
    choice = next((c for c in chunk.choices if c.index == 0), None)
    if choice is None:
        return _Piece("", None, [], usage)
    fragments = [call.model_dump(exclude_none=True) for call in choice.delta.tool_calls or []]
    return _Piece(choice.delta.content or "", choice.finish_reason, fragments, usage)


def _completion_piece(chunk: OpenAICompletion) -> _Piece:
    usage = _usage(chunk.usage) if chunk.usage is not None else None
    choice = next((c for c in chunk.choices if c.index == 0), None)
    if choice is None:
        return _Piece("", None, [], usage)
    return _Piece(choice.text or "", choice.finish_reason, [], usage)


def _traced() -> dict[str, Any]:
    """The request's ``extra_headers``: the current span's W3C ``traceparent`` (none outside
    one), so the upstream continues ember's trace."""
    headers = carrier()
    return {"extra_headers": headers} if headers else {}
