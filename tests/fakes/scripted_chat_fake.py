"""A scripted fake chat server: real HTTP on 127.0.0.1, OpenAI's chat-completions protocol,
answers taken in order from a script, so agent tests get deterministic tool sequences.

- ``POST /v1/chat/completions``, whole or ``stream: true`` (SSE ``chat.completion.chunk``
  events ending in ``data: [DONE]``, a usage chunk when ``stream_options.include_usage`` is
  set). Each request takes the next :class:`Turn` of the script: its text and/or its tool
  calls. With :attr:`ScriptedChatServer.repeat_last` the last turn answers every request once
  the script is used up; otherwise such a request gets a 500 ``script exhausted``.
- Tool calls stream as OpenAI sends them (``style="openai"``: one ``index`` per call, the id
  and name first, the arguments in pieces), or as Ollama's ``/v1`` and other
  OpenAI-compatible servers do (``style="same_index"``: every call whole in one fragment, all
  at ``index`` 0; ``style="same_index_no_id"``: the same without ids). A call's arguments are
  sent exactly as scripted, so a script can send invalid JSON.
- Requests are checked as OpenAI checks them: a ``tool`` message must answer a call of an
  earlier assistant message, and every call of an assistant message must be answered before
  the next non-tool message (400 otherwise).
- :attr:`ScriptedChatServer.requests` records every body received, oldest first (the tool
  results the model saw are in them); ``GET /v1/models`` lists :attr:`model`.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from tests.fakes.server import ThreadedFakeServer

__all__ = ["ScriptedCall", "ScriptedChatServer", "Turn"]

Style = Literal["openai", "same_index", "same_index_no_id"]


@dataclass(frozen=True)
class ScriptedCall:
    """A tool call of a turn. ``arguments`` as an object is sent as its JSON; as text it is
    sent as written (invalid JSON too). ``id=None`` is ``call_<turn>_<n>``."""

    name: str
    arguments: dict[str, Any] | str = field(default_factory=dict)
    id: str | None = None

    def raw(self) -> str:
        return self.arguments if isinstance(self.arguments, str) else json.dumps(self.arguments)


@dataclass(frozen=True)
class Turn:
    """One answer: ``text`` and/or ``calls``, sent after ``delay_s``; ``usage`` is
    ``(prompt, completion)`` tokens (``None``: counted as words); ``status`` answers with that
    HTTP error instead."""

    text: str = ""
    calls: tuple[ScriptedCall, ...] = ()
    delay_s: float = 0.0
    usage: tuple[int, int] | None = None
    status: int | None = None


def _error(status: int, message: str) -> JSONResponse:
    kind = "invalid_request_error" if status < 500 else "server_error"
    body = {"error": {"message": message, "type": kind, "param": None, "code": None}}
    return JSONResponse(body, status_code=status)


def _words(content: object) -> int:
    return len(content.split()) if isinstance(content, str) else 0


def _conversation_error(messages: object) -> str | None:
    if not isinstance(messages, list) or not messages:
        return "'messages' must be a non-empty array."
    open_calls: set[str] = set()
    answered: set[str] = set()
    for message in messages:
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            return "Each message must be an object with a 'role'."
        if message["role"] == "tool":
            call_id = message.get("tool_call_id")
            if call_id not in open_calls or call_id in answered:
                return (
                    "Invalid parameter: messages with role 'tool' must be a response to a "
                    "preceding message with 'tool_calls'."
                )
            answered.add(call_id)
            continue
        if open_calls - answered:
            return (
                "An assistant message with 'tool_calls' must be followed by tool messages "
                "responding to each 'tool_call_id'."
            )
        open_calls = {str(c.get("id")) for c in message.get("tool_calls") or []}
        answered = set()
    return None


class ScriptedChatServer(ThreadedFakeServer):
    """The scripted fake in a background thread; use it as a context manager."""

    def __init__(
        self, script: Sequence[Turn] = (), *, model: str = "scripted", style: Style = "openai"
    ) -> None:
        self.model = model
        self.style: Style = style
        self.repeat_last = False
        self._script: deque[Turn] = deque(script)
        self._last: Turn | None = None
        self._turns = 0
        self._requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._init_server("scripted chat fake")

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def requests(self) -> list[dict[str, Any]]:
        """The chat request bodies received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def load(self, script: Sequence[Turn], *, style: Style | None = None) -> None:
        """Replace the script (and forget the requests and the turn count)."""
        with self._lock:
            self._script = deque(script)
            self._last, self._turns, self._requests = None, 0, []
            self.repeat_last = False
            if style is not None:
                self.style = style

    def _next(self) -> tuple[int, Turn | None]:
        with self._lock:
            if self._script:
                self._last = self._script.popleft()
            elif not self.repeat_last:
                return self._turns, None
            self._turns += 1
            return self._turns, self._last

    def _asgi(self) -> FastAPI:
        app = FastAPI()

        @app.get("/v1/models")
        async def models() -> JSONResponse:
            data = [{"id": self.model, "object": "model", "created": 0, "owned_by": "fake"}]
            return JSONResponse({"object": "list", "data": data})

        @app.post("/v1/chat/completions")
        async def chat(request: Request) -> Response:
            try:
                body = await request.json()
            except ValueError:
                return _error(400, "We could not parse the JSON body of your request.")
            with self._lock:
                self._requests.append(body)
            if body.get("model") != self.model:
                return _error(404, f"The model `{body.get('model')}` does not exist.")
            if (problem := _conversation_error(body.get("messages"))) is not None:
                return _error(400, problem)
            number, turn = self._next()
            if turn is None:
                return _error(500, "script exhausted")
            if turn.delay_s:
                await asyncio.sleep(turn.delay_s)
            if turn.status is not None:
                return _error(turn.status, f"scripted failure {turn.status}")
            calls = [
                {
                    "id": call.id if call.id is not None else f"call_{number}_{n}",
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.raw()},
                }
                for n, call in enumerate(turn.calls)
            ]
            prompt = sum(_words(m.get("content")) for m in body["messages"])
            completion = _words(turn.text) + sum(len(c.raw()) // 4 + 1 for c in turn.calls)
            usage_pair = turn.usage or (prompt, completion)
            usage = {
                "prompt_tokens": usage_pair[0],
                "completion_tokens": usage_pair[1],
                "total_tokens": sum(usage_pair),
            }
            finish = "tool_calls" if calls else "stop"
            if not body.get("stream"):
                return JSONResponse(self._whole(turn.text, calls, finish, usage))
            options = body.get("stream_options") or {}
            with_usage = bool(options.get("include_usage"))
            chunks = self._chunks(turn.text, calls, finish, usage if with_usage else None)
            return StreamingResponse(_events(chunks), media_type="text/event-stream")

        return app

    def _head(self, kind: str) -> dict[str, Any]:
        return {"id": "chatcmpl-scripted", "object": kind, "created": 0, "model": self.model}

    def _whole(
        self, text: str, calls: list[dict[str, Any]], finish: str, usage: dict[str, int]
    ) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": text or None}
        if calls:
            message["tool_calls"] = calls
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
        return {**self._head("chat.completion"), "choices": [choice], "usage": usage}

    def _chunks(
        self,
        text: str,
        calls: list[dict[str, Any]],
        finish: str,
        usage: dict[str, int] | None,
    ) -> list[dict[str, Any]]:
        parts: list[dict[str, Any]] = [{"role": "assistant", "content": ""}]
        parts += [{"content": word} for word in _pieces(text)]
        for index, call in enumerate(calls):
            if self.style != "openai":
                whole = {**call, "index": 0}
                if self.style == "same_index_no_id":
                    del whole["id"]
                parts.append({"tool_calls": [whole]})
                continue
            function = call["function"]
            first = {**call, "index": index, "function": {"name": function["name"]}}
            first["function"]["arguments"] = ""
            parts.append({"tool_calls": [first]})
            arguments = function["arguments"]
            step = max(1, len(arguments) // 3)
            for start in range(0, len(arguments), step):
                piece = {"arguments": arguments[start : start + step]}
                parts.append({"tool_calls": [{"index": index, "function": piece}]})
        parts.append({})
        head = self._head("chat.completion.chunk")
        chunks = []
        for n, delta in enumerate(parts):
            done = finish if n == len(parts) - 1 else None
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": done}
            chunks.append({**head, "choices": [choice]})
        if usage is not None:
            chunks.append({**head, "choices": [], "usage": usage})
        return chunks


def _pieces(text: str) -> list[str]:
    words = text.split(" ")
    return [word if n == 0 else f" {word}" for n, word in enumerate(words) if text]


async def _events(chunks: list[dict[str, Any]]) -> AsyncIterator[str]:
    for chunk in chunks:
        yield f"data: {json.dumps(chunk)}\n\n"
        await asyncio.sleep(0)
    yield "data: [DONE]\n\n"
