"""A fake OpenAI-compatible server: real HTTP on 127.0.0.1, deterministic answers and vectors.

It speaks the real OpenAI protocol, so the official client talks to it unchanged:

- ``POST /v1/embeddings`` (including the client's default ``encoding_format: base64``). Vectors
  are a bag-of-words hashing embedding (:func:`bag_of_words`): texts sharing words get similar
  vectors, texts sharing none get near-orthogonal ones. They are raw word counts, deliberately
  not normalized, so clients must normalize them themselves.
- ``POST /v1/chat/completions`` and ``POST /v1/completions``, whole or ``stream: true`` as
  Server-Sent Events ending in ``data: [DONE]``, with a final usage chunk when
  ``stream_options.include_usage`` is set. The answer is :func:`echo` of the last user (or tool)
  message, or of the prompt: ``Echo:`` and its whitespace-separated words, one token per word
  and one stream delta per token, cut at ``max_tokens`` and at the first ``stop`` string.
  When the request has ``tools`` and the last message is a user message naming one of their
  functions, the answer is a call of that function with ``{"text": <the message>}``.
- ``GET /v1/models``: ``models``, the names it knows; other models get 404 ``model_not_found``.

With :attr:`FakeOpenAIServer.report_usage` off, answers carry no ``usage`` and streams no usage
chunk, as OpenAI-compatible servers that ignore ``stream_options`` do.

Failure injection on the ``POST`` routes: :meth:`FakeOpenAIServer.fail_next` answers the next
calls with an HTTP error in OpenAI's error format (429 with ``Retry-After``, 500, 401, 400, ...);
:meth:`FakeOpenAIServer.stall_next` delays them past a client's timeout;
:meth:`FakeOpenAIServer.break_stream_after` closes the connection in the middle of a stream;
:meth:`FakeOpenAIServer.stop` and :meth:`FakeOpenAIServer.start` take it off the network and
back on the same port. It is an :class:`ember.testing.provider.Upstream`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import re
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from tests.fakes.server import Fault, FaultState, ThreadedFakeServer

__all__ = ["FakeCall", "FakeOpenAIServer", "bag_of_words", "echo", "words_of"]

_WORD = re.compile(r"\w+")
_PIECE = re.compile(r"\s*\S+|\s+")
_ERROR_TYPES = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
}


def bag_of_words(words: list[str], dim: int) -> np.ndarray:
    """Raw signed counts of hashed words: word ``w`` adds ±1 at ``blake2b(w) % dim``."""
    vector = np.zeros(dim, dtype=np.float32)
    for word in words:
        digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
        vector[int.from_bytes(digest[:4], "little") % dim] += 1.0 if digest[4] & 1 else -1.0
    if not vector.any():
        vector[0] = 1.0
    return vector


def words_of(text: str) -> list[str]:
    """The lower-cased words of a text (the whole text when it has none)."""
    return _WORD.findall(text.lower()) or [text]


def echo(source: str, max_tokens: int | None = None, stop: tuple[str, ...] = ()) -> tuple[str, str]:
    """The fake's answer to ``source`` and its finish reason (``stop`` or ``length``)."""
    tokens = ["Echo:", *source.split()]
    finish = "stop"
    if max_tokens is not None and 0 < max_tokens < len(tokens):
        tokens, finish = tokens[:max_tokens], "length"
    text = " ".join(tokens)
    cuts = [text.find(s) for s in stop if s and s in text]
    if cuts:
        text, finish = text[: min(cuts)], "stop"
    return text, finish


@dataclass(frozen=True)
class FakeCall:
    """One request the server received."""

    path: str
    body: dict[str, Any]
    headers: dict[str, str]


@dataclass(frozen=True)
class _Answer:
    text: str
    finish: str
    prompt_tokens: int
    completion_tokens: int
    tool_calls: list[dict[str, Any]] | None = None

    @property
    def usage(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }


class _StreamBroken(Exception):
    """Raised inside a stream to make uvicorn drop the connection mid-body."""


class _QuietBreaks(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, BaseExceptionGroup):
            return exc.subgroup(_StreamBroken) is None
        return not isinstance(exc, _StreamBroken)


class FakeOpenAIServer(ThreadedFakeServer):
    """A fake OpenAI-compatible server in a background thread; use it as a context manager.

    ``dim`` is the length of every vector; ``models`` are the model names it knows (others get
    404 ``model_not_found``), for chat, completions and embeddings alike; with ``api_key`` set,
    requests without ``Bearer <api_key>`` get 401. ``scramble`` makes embedding responses list
    their items in reverse order (``index`` still correct).
    """

    def __init__(
        self, dim: int = 64, models: tuple[str, ...] = ("fake-embed",), api_key: str | None = None
    ) -> None:
        self.dim = dim
        self.models = models
        self.api_key = api_key
        self.scramble = False
        self.tool_arguments: list[str] | None = None
        """The arguments texts of the calls a tool answer makes, one call each (``None``: one
        call with ``{"text": <the message>}``)."""
        self.same_index = False
        """Stream every tool call whole in one fragment at ``index`` 0, as Ollama's /v1 does."""
        self.report_usage = True
        """``False``: no ``usage`` in answers and no usage chunk in streams."""
        self._state = FaultState()
        self._lock = threading.Lock()
        self._init_server("fake OpenAI server")

    @property
    def base_url(self) -> str:
        """The URL to give an OpenAI client, ending in ``/v1``."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def calls(self) -> list[FakeCall]:
        """Requests received so far (``GET /v1/models`` too), oldest first."""
        with self._lock:
            return list(self._state.calls)

    def fail_next(
        self,
        status: int,
        count: int = 1,
        retry_after_s: float | None = None,
        message: str = "injected failure",
        *,
        times: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        """Answer the next ``count`` POST calls with ``status`` in OpenAI's error format.

        ``times`` and ``retry_after`` are older spellings of ``count`` and ``retry_after_s``.
        """
        count = count if times is None else times
        wait = retry_after_s if retry_after is None else retry_after
        with self._lock:
            for _ in range(count):
                self._state.faults.append(Fault(status, retry_after_s=wait, message=message))

    def stall_next(self, seconds: float, count: int = 1, *, times: int | None = None) -> None:
        """Hold the next ``count`` POST calls for ``seconds`` before answering normally."""
        count = count if times is None else times
        with self._lock:
            self._state.faults.extend(Fault(None, stall_s=seconds) for _ in range(count))

    def break_stream_after(self, n_chunks: int, count: int = 1) -> None:
        """Close the connection of the next ``count`` streams after ``n_chunks`` SSE events.

        A chat stream's first event is the ``role`` chunk with empty content, then one event
        per token. The response is left unfinished, as when a server dies mid-answer.
        """
        with self._lock:
            self._state.breaks.extend(n_chunks for _ in range(count))

    def reset(self) -> None:
        """Forget pending faults and recorded calls; put the answer settings (``scramble``,
        ``tool_arguments``, ``same_index``, ``report_usage``) back to their defaults."""
        with self._lock:
            self._state = FaultState()
            self.scramble = False
            self.tool_arguments = None
            self.same_index = False
            self.report_usage = True

    def start(self) -> None:
        """Listen (again) on 127.0.0.1 and wait until the server accepts requests.

        The first start takes a free port; later ones reuse it, so clients reconnect unchanged.
        """
        logger = logging.getLogger("uvicorn.error")
        if not any(isinstance(f, _QuietBreaks) for f in logger.filters):
            logger.addFilter(_QuietBreaks())
        super().start()

    def _asgi(self) -> FastAPI:
        return self._app()

    def _record(self, request: Request, body: dict[str, Any], faults: bool = True) -> Fault | None:
        call = FakeCall(request.url.path, body, dict(request.headers))
        with self._lock:
            self._state.calls.append(call)
            return self._state.faults.popleft() if faults and self._state.faults else None

    def _next_break(self) -> int | None:
        with self._lock:
            return self._state.breaks.popleft() if self._state.breaks else None

    def _app(self) -> FastAPI:
        app = FastAPI()

        @app.get("/v1/models")
        async def models(request: Request) -> JSONResponse:
            self._record(request, {}, faults=False)
            if (denied := self._check_key(request)) is not None:
                return denied
            data = [
                {"id": name, "object": "model", "created": 0, "owned_by": "ember-fake"}
                for name in self.models
            ]
            return JSONResponse({"object": "list", "data": data})

        @app.post("/v1/embeddings")
        async def embeddings(request: Request) -> Response:
            body, refused = await self._admit(request)
            return refused or self._embed(body)

        @app.post("/v1/chat/completions")
        async def chat(request: Request) -> Response:
            body, refused = await self._admit(request)
            return refused or self._complete(body, chat=True)

        @app.post("/v1/completions")
        async def completions(request: Request) -> Response:
            body, refused = await self._admit(request)
            return refused or self._complete(body, chat=False)

        return app

    async def _admit(self, request: Request) -> tuple[dict[str, Any], JSONResponse | None]:
        """The JSON body, or the error response: a bad body, an injected fault, a wrong key."""
        try:
            body = await request.json()
        except ValueError:
            return {}, _error(400, "We could not parse the JSON body of your request.")
        if not isinstance(body, dict):
            return {}, _error(400, "The request body must be a JSON object.")
        fault = self._record(request, body)
        if fault is not None and fault.status is None:
            await self._stall(fault.stall_s)
        elif fault is not None and fault.status is not None:
            return body, _error(fault.status, fault.message, fault.retry_after_s)
        return body, self._check_key(request)

    async def _stall(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not self._stopping.is_set():
            await asyncio.sleep(0.02)

    def _check_key(self, request: Request) -> JSONResponse | None:
        if self.api_key is None or request.headers.get("authorization") == f"Bearer {self.api_key}":
            return None
        return _error(401, "Incorrect API key provided.")

    def _unknown_model(self, model: object) -> JSONResponse | None:
        if not isinstance(model, str):
            return _error(400, "you must provide a model parameter")
        if model not in self.models:
            return _error(404, f"The model `{model}` does not exist or you do not have access.")
        return None

    def _embed(self, body: dict[str, Any]) -> JSONResponse:
        model = body.get("model")
        if (missing := self._unknown_model(model)) is not None:
            return missing
        texts = _inputs(body.get("input"))
        if texts is None:
            return _error(400, "'$.input' is invalid: a string, strings, or token arrays.")
        encoding = body.get("encoding_format", "float")
        if encoding not in ("float", "base64"):
            return _error(400, f"'{encoding}' is not one of ['float', 'base64']")
        data = []
        for index, words in enumerate(texts):
            vector = bag_of_words(words, self.dim)
            if encoding == "base64":
                encoded: Any = base64.b64encode(vector.astype("<f4").tobytes()).decode()
            else:
                encoded = [float(x) for x in vector]
            data.append({"object": "embedding", "index": index, "embedding": encoded})
        if self.scramble:
            data.reverse()
        tokens = sum(len(words) for words in texts)
        return JSONResponse(
            {
                "object": "list",
                "data": data,
                "model": model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )

    def _complete(self, body: dict[str, Any], chat: bool) -> Response:
        model = body.get("model")
        if (missing := self._unknown_model(model)) is not None:
            return missing
        answer = _chat_answer(body, self.tool_arguments) if chat else _prompt_answer(body)
        if isinstance(answer, JSONResponse):
            return answer
        if not body.get("stream"):
            whole = _whole(str(model), answer, chat)
            if not self.report_usage:
                del whole["usage"]
            return JSONResponse(whole)
        options = body.get("stream_options") or {}
        usage = isinstance(options, dict) and bool(options.get("include_usage"))
        chunks = _chunks(str(model), answer, chat, usage and self.report_usage, self.same_index)
        events = self._events(chunks, self._next_break())
        return StreamingResponse(events, media_type="text/event-stream")

    async def _events(self, chunks: list[dict[str, Any]], broken: int | None) -> AsyncIterator[str]:
        for sent, chunk in enumerate(chunks):
            if broken is not None and sent >= broken:
                raise _StreamBroken
            yield f"data: {json.dumps(chunk)}\n\n"
            await asyncio.sleep(0)
        yield "data: [DONE]\n\n"


def _chat_answer(body: dict[str, Any], tool_arguments: list[str] | None) -> _Answer | JSONResponse:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return _error(400, "'messages' must be a non-empty array.")
    if not all(isinstance(m, dict) and isinstance(m.get("role"), str) for m in messages):
        return _error(400, "Each message must be an object with a 'role'.")
    called: set[str] = set()
    for message in messages:
        called.update(str(c.get("id")) for c in message.get("tool_calls") or [])
        if message["role"] == "tool" and message.get("tool_call_id") not in called:
            return _error(
                400,
                "Invalid parameter: messages with role 'tool' must be a response to a "
                "preceding message with 'tool_calls'.",
            )
    prompt_tokens = sum(len(_text(m.get("content")).split()) for m in messages)
    last = messages[-1]
    functions = [
        tool["function"]["name"]
        for tool in body.get("tools") or []
        if isinstance(tool, dict) and isinstance(tool.get("function"), dict)
    ]
    named = [name for name in functions if name in _text(last.get("content")).split()]
    if last["role"] == "user" and named:
        texts = tool_arguments or [json.dumps({"text": _text(last.get("content"))})]
        calls = [
            {
                "id": f"call_fake_{n}",
                "type": "function",
                "function": {"name": named[0], "arguments": text},
            }
            for n, text in enumerate(texts)
        ]
        tokens = sum(len(text.split()) for text in texts)
        return _Answer("", "tool_calls", prompt_tokens, tokens, calls)
    source = next((m for m in reversed(messages) if m["role"] in ("user", "tool")), last)
    text, finish = echo(_text(source.get("content")), *_limits(body))
    return _Answer(text, finish, prompt_tokens, len(text.split()))


def _prompt_answer(body: dict[str, Any]) -> _Answer | JSONResponse:
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1:
        prompt = prompt[0]
    if not isinstance(prompt, str):
        return _error(400, "'prompt' must be a string.")
    text, finish = echo(prompt, *_limits(body))
    return _Answer(text, finish, max(1, len(prompt.split())), len(text.split()))


def _limits(body: dict[str, Any]) -> tuple[int | None, tuple[str, ...]]:
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    stop = body.get("stop") or ()
    stops = (stop,) if isinstance(stop, str) else tuple(str(s) for s in stop)
    return (limit if isinstance(limit, int) else None), stops


def _text(content: object) -> str:
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return content if isinstance(content, str) else ""


def _whole(model: str, answer: _Answer, chat: bool) -> dict[str, Any]:
    if chat:
        message: dict[str, Any] = {"role": "assistant", "content": answer.text or None}
        if answer.tool_calls:
            message["tool_calls"] = answer.tool_calls
        choice: dict[str, Any] = {"index": 0, "message": message}
    else:
        choice = {"index": 0, "text": answer.text}
    choice.update(logprobs=None, finish_reason=answer.finish)
    kind = "chat.completion" if chat else "text_completion"
    return {**_head(model, kind), "choices": [choice], "usage": answer.usage}


def _chunks(
    model: str, answer: _Answer, chat: bool, usage: bool, same_index: bool = False
) -> list[dict[str, Any]]:
    """The stream's events: (chat: a role chunk,) one per token or tool-call part, the finish
    chunk, and with ``usage`` a last chunk with no choices and the usage. With ``same_index``
    each tool call is one part, at ``index`` 0."""
    head = _head(model, "chat.completion.chunk" if chat else "text_completion")
    if usage:
        head["usage"] = None
    parts: list[dict[str, Any]] = [{"role": "assistant", "content": ""}] if chat else []
    parts += [{"content": piece} for piece in _PIECE.findall(answer.text)]
    for index, call in enumerate(answer.tool_calls or []):
        if same_index:
            parts.append({"tool_calls": [{**call, "index": 0}]})
            continue
        function = call["function"]
        first = {**call, "index": index, "function": {"name": function["name"], "arguments": ""}}
        parts.append({"tool_calls": [first]})
        arguments = function["arguments"]
        third = max(1, len(arguments) // 3)
        for start in range(0, len(arguments), third):
            fragment = {"arguments": arguments[start : start + third]}
            parts.append({"tool_calls": [{"index": index, "function": fragment}]})
    parts.append({})
    chunks = []
    for n, part in enumerate(parts):
        finish = answer.finish if n == len(parts) - 1 else None
        if chat:
            choice = {"index": 0, "delta": part, "logprobs": None, "finish_reason": finish}
        else:
            text = part.get("content", "")
            choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}
        chunks.append({**head, "choices": [choice]})
    if usage:
        chunks.append({**head, "choices": [], "usage": answer.usage})
    return chunks


def _head(model: str, kind: str) -> dict[str, Any]:
    prefix = "chatcmpl" if kind.startswith("chat") else "cmpl"
    return {
        "id": f"{prefix}-fake",
        "object": kind,
        "created": 0,
        "model": model,
        "system_fingerprint": "fp_fake",
    }


def _inputs(value: object) -> list[list[str]] | None:
    """Words per input, or ``None`` when the input is not valid (empty strings are not)."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        return None
    if all(isinstance(item, int) for item in value):
        value = [value]
    texts: list[list[str]] = []
    for item in value:
        if isinstance(item, str) and item:
            texts.append(words_of(item))
        elif isinstance(item, list) and item and all(isinstance(t, int) for t in item):
            texts.append([f"token{t}" for t in item])
        else:
            return None
    return texts


def _error(status: int, message: str, retry_after: float | None = None) -> JSONResponse:
    kind, code = _ERROR_TYPES.get(status, ("server_error" if status >= 500 else "api_error", None))
    headers = {"retry-after": f"{retry_after:g}"} if retry_after is not None else None
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)
