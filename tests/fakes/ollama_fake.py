"""A fake Ollama server: real HTTP on 127.0.0.1, speaking Ollama's native ``/api`` protocol.

:class:`FakeOllamaServer` serves ``POST /api/chat``, ``/api/generate``, ``/api/embed``,
``/api/show`` and ``GET /api/tags``, ``/api/version`` as Ollama does, so the official ``ollama``
client talks to it unchanged. Like Ollama, chat and generate stream NDJSON (one JSON object a
line, the last with ``done: true``) unless the body says ``"stream": false`` (the client says
so unless asked to stream); then they answer one JSON object. The last object carries
``done_reason``, ``prompt_eval_count`` and ``eval_count``.

Answers are deterministic: :func:`reply_tokens` of the last user (or tool) message, or of the
prompt, one token per stream chunk, cut by ``num_predict`` (``done_reason: length``) and at
the first ``stop`` string. Given ``tools``, a chat whose last message is the user's is answered
with a call of the first tool, every required argument set to that message. Token counts are
whitespace-separated words. Embeddings are L2-normalized hashed bags of words. An unknown model
gets 404 ``{"error": "model 'x' not found"}``; a name without a tag means ``:latest``.

With :attr:`~FakeOllamaServer.report_counts` off, answers carry neither ``prompt_eval_count``
nor ``eval_count``, as Ollama leaves out counts that are 0 (its metrics are ``omitempty``).

Failure injection: :meth:`~FakeOllamaServer.fail_next` answers the next calls with an HTTP
error in Ollama's shape (``Retry-After`` when given), :meth:`~FakeOllamaServer.stall_next`
holds them, :meth:`~FakeOllamaServer.break_stream_after` closes the connection in the middle of
the next streamed answer, and :meth:`~FakeOllamaServer.stop` / :meth:`~FakeOllamaServer.start`
take it off and back on the same port. It satisfies :class:`ember.testing.provider.Upstream`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import re
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.types import Receive, Scope, Send

from tests.fakes.server import Fault, FaultState, ThreadedFakeServer

__all__ = ["FakeCall", "FakeOllamaServer", "Reply", "embedding_of", "reply", "reply_tokens"]

CREATED_AT = "2025-01-01T00:00:00Z"
_TOKEN = re.compile(r"\s*\S+")
_WORD = re.compile(r"\w+")
_NDJSON = "application/x-ndjson"


def reply_tokens(text: str) -> list[str]:
    """The fake model's whole answer to ``text``, token by token: ``Fake reply: <text>``."""
    return _TOKEN.findall("Fake reply: " + " ".join(text.split()))


def count_tokens(text: str) -> int:
    """The fake tokenizer: whitespace-separated words."""
    return len(text.split())


@dataclass(frozen=True)
class Reply:
    """What the fake model answers: the stream's text chunks, why it stopped, tokens spent."""

    chunks: list[str]
    done_reason: str
    eval_count: int
    tool_calls: list[dict[str, Any]] | None = None

    @property
    def text(self) -> str:
        return "".join(self.chunks)


def reply(text: str, options: dict[str, Any] | None = None) -> Reply:
    """The answer to ``text`` under Ollama ``options`` (``num_predict`` and ``stop`` count)."""
    options = options or {}
    limit = options.get("num_predict")
    stops = [stop for stop in options.get("stop") or [] if stop]
    chunks: list[str] = []
    produced = ""
    for token in reply_tokens(text):
        if isinstance(limit, int) and 0 <= limit <= len(chunks):
            return Reply(chunks, "length", len(chunks))
        candidate = produced + token
        cuts = [candidate.find(stop) for stop in stops if stop in candidate]
        if cuts:
            piece = candidate[len(produced) : max(min(cuts), len(produced))]
            if piece:
                chunks.append(piece)
            return Reply(chunks, "stop", len(chunks) + 1)
        chunks.append(token)
        produced = candidate
    return Reply(chunks, "stop", len(chunks))


def embedding_of(text: str, dim: int) -> list[float]:
    """An L2-normalized hashed bag of the words of ``text`` (Ollama normalizes too)."""
    vector = [0.0] * dim
    for word in _WORD.findall(text.lower()) or [text]:
        digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
        vector[int.from_bytes(digest[:4], "little") % dim] += 1.0 if digest[4] & 1 else -1.0
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    if not any(vector):
        vector[0], norm = 1.0, 1.0
    return [x / norm for x in vector]


@dataclass(frozen=True)
class FakeCall:
    """One request the server received."""

    method: str
    path: str
    body: dict[str, Any]
    headers: dict[str, str]


class _BrokenStream(Response):
    """A 200 NDJSON answer that sends some lines, then returns without ending the body:
    uvicorn closes the connection, and the client sees it end mid-stream."""

    def __init__(self, lines: list[bytes]) -> None:
        super().__init__(media_type=_NDJSON)
        self.lines = lines

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", _NDJSON.encode())]  # no length: the body is chunked
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for line in self.lines:
            await send({"type": "http.response.body", "body": line, "more_body": True})


class FakeOllamaServer(ThreadedFakeServer):
    """A fake Ollama server in a background thread; use it as a context manager.

    ``models`` are the model names it serves (``name:tag``), ``dim`` the length of its
    embeddings, ``version`` what ``/api/version`` says.
    """

    def __init__(
        self,
        models: tuple[str, ...] = ("fake-llama:latest", "fake-embed:latest"),
        dim: int = 32,
        version: str = "0.12.6",
    ) -> None:
        self.models = models
        self.dim = dim
        self.version = version
        self.report_counts = True
        """``False``: no ``prompt_eval_count`` and ``eval_count`` in answers."""
        self._state = FaultState()
        self._lock = threading.Lock()
        self._init_server("fake Ollama server")
        self._app = self._build_app()

    @property
    def host(self) -> str:
        """The URL to give an Ollama client."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def calls(self) -> list[FakeCall]:
        """Requests received so far, oldest first."""
        with self._lock:
            return list(self._state.calls)

    def tag(self, name: str) -> dict[str, Any]:
        """The ``/api/tags`` entry of a model this server serves."""
        digest = hashlib.sha256(name.encode()).hexdigest()
        family = name.split(":")[0].removeprefix("fake-")
        return {
            "name": name,
            "model": name,
            "modified_at": CREATED_AT,
            "size": 1_000_000 + int(digest[:6], 16),
            "digest": digest,
            "details": {
                "parent_model": "",
                "format": "gguf",
                "family": family,
                "families": [family],
                "parameter_size": "1.2B",
                "quantization_level": "Q4_K_M",
            },
        }

    def fail_next(
        self,
        status: int,
        count: int = 1,
        retry_after_s: float | None = None,
        *,
        message: str = "injected failure",
    ) -> None:
        """Answer the next ``count`` calls with ``status`` and ``{"error": message}``."""
        with self._lock:
            fault = Fault(status, retry_after_s=retry_after_s, message=message)
            self._state.faults.extend([fault] * count)

    def stall_next(self, seconds: float, count: int = 1) -> None:
        """Hold the next ``count`` calls for ``seconds`` before answering normally."""
        with self._lock:
            self._state.faults.extend(Fault(None, stall_s=seconds) for _ in range(count))

    def break_stream_after(self, n_chunks: int, count: int = 1) -> None:
        """Close the connection after ``n_chunks`` lines of the next ``count`` streamed answers."""
        with self._lock:
            self._state.breaks.extend([n_chunks] * count)

    def reset(self) -> None:
        """Forget pending faults, breaks and recorded calls; report counts again."""
        with self._lock:
            self._state = FaultState()
            self.report_counts = True

    def _resolve(self, name: object) -> str | None:
        if not isinstance(name, str):
            return None
        for candidate in (name, f"{name}:latest"):
            if candidate in self.models:
                return candidate
        return None

    async def _admit(self, request: Request) -> tuple[dict[str, Any], Response | None]:
        """Record the call and apply the next fault: the body, and an answer that replaces the
        normal one (an error) or ``None``."""
        body: dict[str, Any] = {}
        if request.method == "POST":
            try:
                parsed = await request.json()
            except ValueError:
                return body, _error(400, "invalid character in request body")
            if not isinstance(parsed, dict):
                return body, _error(400, "request body must be a JSON object")
            body = parsed
        with self._lock:
            self._state.calls.append(
                FakeCall(request.method, request.url.path, body, dict(request.headers))
            )
            fault = self._state.faults.popleft() if self._state.faults else None
        if fault is not None and fault.status is not None:
            return body, _error(fault.status, fault.message, fault.retry_after_s)
        if fault is not None:
            deadline = time.monotonic() + fault.stall_s
            while time.monotonic() < deadline and not self._stopping.is_set():
                await asyncio.sleep(0.02)
        if request.method == "POST" and request.url.path != "/api/show" and not body.get("model"):
            return body, _error(400, "model is required")
        return body, None

    def _asgi(self) -> FastAPI:
        return self._app

    def _build_app(self) -> FastAPI:
        app = FastAPI()

        @app.get("/")
        async def root() -> Response:
            return Response("Ollama is running", media_type="text/plain")

        @app.get("/api/version")
        async def version(request: Request) -> Response:
            _, denied = await self._admit(request)
            return _either(denied, lambda: JSONResponse({"version": self.version}))

        @app.get("/api/tags")
        async def tags(request: Request) -> Response:
            _, denied = await self._admit(request)
            listed = {"models": [self.tag(name) for name in self.models]}
            return _either(denied, lambda: JSONResponse(listed))

        @app.post("/api/show")
        async def show(request: Request) -> Response:
            body, denied = await self._admit(request)
            return _either(denied, lambda: self._show(body))

        @app.post("/api/chat")
        async def chat(request: Request) -> Response:
            body, denied = await self._admit(request)
            return _either(denied, lambda: self._generation(body, chat=True))

        @app.post("/api/generate")
        async def generate(request: Request) -> Response:
            body, denied = await self._admit(request)
            return _either(denied, lambda: self._generation(body, chat=False))

        @app.post("/api/embed")
        async def embed(request: Request) -> Response:
            body, denied = await self._admit(request)
            return _either(denied, lambda: self._embed(body))

        return app

    def _show(self, body: dict[str, Any]) -> Response:
        name = self._resolve(body.get("model") or body.get("name"))
        if name is None:
            return _not_found(body.get("model") or body.get("name"))
        tag = self.tag(name)
        family = tag["details"]["family"]
        capabilities = ["embedding"] if "embed" in name else ["completion", "tools"]
        return JSONResponse(
            {
                "modelfile": f"FROM {name}\n",
                "parameters": 'stop "<|end|>"',
                "template": "{{ .Prompt }}",
                "details": tag["details"],
                "model_info": {
                    "general.architecture": family,
                    f"{family}.context_length": 4096,
                    f"{family}.embedding_length": self.dim,
                },
                "capabilities": capabilities,
                "modified_at": CREATED_AT,
            }
        )

    def _generation(self, body: dict[str, Any], *, chat: bool) -> Response:
        if self._resolve(body.get("model")) is None:
            return _not_found(body.get("model"))
        options = body.get("options") if isinstance(body.get("options"), dict) else {}
        if chat:
            messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
            prompt_tokens = sum(count_tokens(str(m.get("content") or "")) for m in messages)
            answer = _chat_reply(messages, body.get("tools"), options)
        else:
            prompt = str(body.get("prompt") or "")
            prompt_tokens = count_tokens(str(body.get("system") or "")) + count_tokens(prompt)
            answer = reply(prompt, options)
        stats = {
            "total_duration": 1_000_000,
            "load_duration": 100_000,
            "prompt_eval_count": max(1, prompt_tokens),
            "prompt_eval_duration": 200_000,
            "eval_count": answer.eval_count,
            "eval_duration": 700_000,
        }
        if not self.report_counts:
            del stats["prompt_eval_count"], stats["eval_count"]
        base = {"model": body["model"], "created_at": CREATED_AT}
        final = {**base, "done": True, "done_reason": answer.done_reason, **stats}
        if not chat:
            final["context"] = [1, 2, 3]
        if body.get("stream", True) is False:
            return JSONResponse({**final, **_content(chat, answer.text, answer.tool_calls)})
        lines = [{**base, **_content(chat, chunk, None), "done": False} for chunk in answer.chunks]
        if answer.tool_calls:
            lines.append({**base, **_content(chat, "", answer.tool_calls), "done": False})
        lines.append({**final, **_content(chat, "", None)})
        encoded = [json.dumps(line).encode() + b"\n" for line in lines]
        with self._lock:
            cut = self._state.breaks.popleft() if self._state.breaks else None
        if cut is not None:
            return _BrokenStream(encoded[:cut])
        return StreamingResponse(_lines(encoded), media_type=_NDJSON)

    def _embed(self, body: dict[str, Any]) -> Response:
        if self._resolve(body.get("model")) is None:
            return _not_found(body.get("model"))
        texts = body.get("input")
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            return _error(400, "invalid input type")
        return JSONResponse(
            {
                "model": body["model"],
                "embeddings": [embedding_of(text, self.dim) for text in texts],
                "total_duration": 1_000_000,
                "load_duration": 100_000,
                "prompt_eval_count": sum(count_tokens(text) for text in texts),
            }
        )


def _chat_reply(messages: list[dict[str, Any]], tools: object, options: dict[str, Any]) -> Reply:
    answered = [m for m in messages if m.get("role") in ("user", "tool")]
    text = str(answered[-1].get("content") or "") if answered else ""
    last_role = messages[-1].get("role") if messages else None
    if isinstance(tools, list) and tools and last_role == "user":
        function = tools[0].get("function") or {}
        required = (function.get("parameters") or {}).get("required") or []
        arguments = dict.fromkeys(required, text)
        call = {"function": {"name": function.get("name"), "arguments": arguments}}
        return Reply([], "stop", 1 + count_tokens(text), tool_calls=[call])
    return reply(text, options)


def _content(chat: bool, text: str, tool_calls: list[dict[str, Any]] | None) -> dict[str, Any]:
    if not chat:
        return {"response": text}
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {"message": message}


async def _lines(encoded: list[bytes]) -> AsyncIterator[bytes]:
    for line in encoded:
        yield line
        await asyncio.sleep(0)


def _either(denied: Response | None, answer: Callable[[], Response]) -> Response:
    return denied if denied is not None else answer()


def _not_found(model: object) -> JSONResponse:
    return _error(404, f"model '{model}' not found")


def _error(status: int, message: str, retry_after_s: float | None = None) -> JSONResponse:
    headers = {"retry-after": f"{retry_after_s:g}"} if retry_after_s is not None else None
    return JSONResponse({"error": message}, status_code=status, headers=headers)
