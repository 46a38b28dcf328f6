"""OpenAI's response bodies: errors, whole answers, stream chunks, models and vectors."""

from __future__ import annotations

import base64
import json
import struct
import time
import uuid
from typing import Any

from ember.chat import Completion, Delta, ModelInfo, Usage
from ember.errors import EmberError
from ember.serve_app.compat.shared import dialect_status

__all__ = ["Chunks", "answer_body", "encode_vector", "model_entry", "openai_error"]

_TYPES = {
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
}


def openai_error(error: EmberError) -> dict[str, Any]:
    """``error`` in OpenAI's error shape; ``code`` is ember's code."""
    status = dialect_status(error)
    kind = _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    param = error.extra.get("param")
    return {
        "error": {
            "message": error.detail,
            "type": kind,
            "param": param if isinstance(param, str) else None,
            "code": error.code,
        }
    }


def _sse(payload: dict[str, Any] | str) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return f"data: {data}\n\n".encode()


def _usage(usage: Usage) -> dict[str, int]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }


def _finish(reason: str | None, tool_calls: bool) -> str:
    if tool_calls and reason in (None, "stop"):
        return "tool_calls"
    return reason or "stop"


class Chunks:
    """The SSE events of one chat (``chat=True``) or completion stream."""

    def __init__(self, model: str, chat: bool, include_usage: bool) -> None:
        kind = "chat.completion.chunk" if chat else "text_completion"
        prefix = "chatcmpl" if chat else "cmpl"
        self._head: dict[str, Any] = {
            "id": f"{prefix}-{uuid.uuid4().hex}",
            "object": kind,
            "created": int(time.time()),
            "model": model,
        }
        if include_usage:
            self._head["usage"] = None
        self._chat = chat
        self._include_usage = include_usage
        self._calls = 0
        self._finish: str | None = None
        self._started = False

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        if self._chat:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        else:
            choice = {"index": 0, "text": delta.get("content", ""), "logprobs": None}
            choice["finish_reason"] = finish
        return _sse({**self._head, "choices": [choice]})

    def delta(self, delta: Delta) -> list[bytes]:
        """The role chunk first, then one chunk for the text and one per tool call."""
        events = []
        if self._chat and not self._started:
            events.append(self._chunk({"role": "assistant", "content": ""}))
        self._started = True
        if delta.text:
            events.append(self._chunk({"content": delta.text}))
        for call in delta.tool_calls or []:
            events.append(self._chunk({"tool_calls": [{**call.to_openai(), "index": self._calls}]}))
            self._calls += 1
        self._finish = delta.finish_reason or self._finish
        return events

    def end(self, usage: Usage) -> list[bytes]:
        """The finish chunk, the usage chunk when asked for, and ``[DONE]``."""
        events = [self._chunk({}, _finish(self._finish, self._calls > 0))]
        if self._include_usage:
            events.append(_sse({**self._head, "choices": [], "usage": _usage(usage)}))
        events.append(_sse("[DONE]"))
        return events

    def error(self, error: EmberError) -> list[bytes]:
        return [_sse(openai_error(error))]


def answer_body(model: str, answer: Completion, chat: bool) -> dict[str, Any]:
    """A whole ``chat.completion`` (``chat=True``) or ``text_completion`` named ``model``; its
    usage is the answer's, which the router settled (the provider's, else the estimate)."""
    finish = _finish(answer.finish_reason, bool(answer.tool_calls))
    choice: dict[str, Any] = {"index": 0, "logprobs": None, "finish_reason": finish}
    if chat:
        message: dict[str, Any] = {"role": "assistant", "content": answer.text, "refusal": None}
        if answer.tool_calls:
            calls = [call.to_openai() for call in answer.tool_calls]
            message.update(content=answer.text or None, tool_calls=calls)
        choice["message"] = message
    else:
        choice["text"] = answer.text
    return {
        "id": f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex}",
        "object": "chat.completion" if chat else "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [choice],
        "usage": _usage(answer.usage),
    }


def model_entry(info: ModelInfo) -> dict[str, Any]:
    """A ``model`` object: ``owned_by`` is the provider (``alias`` for an alias)."""
    created = info.details.get("created")
    return {
        "id": info.name,
        "object": "model",
        "created": created if isinstance(created, int) else 0,
        "owned_by": info.provider,
    }


def encode_vector(values: list[float], encoding: str) -> list[float] | str:
    """``values`` as floats, or for ``base64`` as base64 of little-endian float32."""
    if encoding == "float":
        return values
    return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()
