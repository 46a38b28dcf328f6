"""Ollama's wire shapes: ember's options, messages and tool calls out, deltas and usage in,
and the per-call timeout the adapter sets on each HTTP request.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
from collections.abc import Iterator, Sequence
from typing import Any

import httpx
import ollama

from ember.errors import ProviderBadRequest
from ember.providers.types import ChatMessage, Delta, GenerationOptions, Usage

__all__ = [
    "apply_call_timeout",
    "call_timeout",
    "delta",
    "messages",
    "options",
    "tool_calls",
    "usage",
]

_CALL_TIMEOUT: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "ember_ollama_call_timeout", default=None
)


async def apply_call_timeout(request: httpx.Request) -> None:
    """httpx request hook: give the request the current call's timeout, when it has one."""
    seconds = _CALL_TIMEOUT.get()
    if seconds is not None:
        request.extensions["timeout"] = httpx.Timeout(seconds).as_dict()


@contextlib.contextmanager
def call_timeout(seconds: float | None) -> Iterator[None]:
    """Requests sent inside the block get ``seconds`` (``None``: the client's own timeout)."""
    token = _CALL_TIMEOUT.set(seconds)
    try:
        yield
    finally:
        _CALL_TIMEOUT.reset(token)


def options(given: GenerationOptions) -> dict[str, Any] | None:
    """Ollama's ``options`` for ``given``; ``None`` when nothing is set."""
    values: dict[str, Any] = {
        "num_predict": given.max_tokens,
        "temperature": given.temperature,
        "top_p": given.top_p,
        "stop": list(given.stop) or None,
        "seed": given.seed,
    }
    chosen = {key: value for key, value in values.items() if value is not None}
    return chosen or None


def usage(reply: ollama.ChatResponse | ollama.GenerateResponse) -> Usage:
    """``prompt_eval_count`` and ``eval_count``; 0 where Ollama gave none."""
    return Usage(reply.prompt_eval_count or 0, reply.eval_count or 0)


def delta(
    part: ollama.ChatResponse | ollama.GenerateResponse,
    text: str,
    tool_calls: list[dict[str, Any]] | None,
) -> Delta | None:
    """A part as a delta: the last one (``done``) always, others only when they carry
    something (thinking-only parts carry nothing of the answer)."""
    if part.done:
        finish = part.done_reason or "stop"
        return Delta(text, finish_reason=finish, usage=usage(part), tool_calls=tool_calls)
    return Delta(text, tool_calls=tool_calls) if text or tool_calls else None


def messages(given: Sequence[ChatMessage]) -> list[dict[str, Any]]:
    """ember's messages in Ollama's shape; OpenAI-shaped tool calls become Ollama's.

    :raises ProviderBadRequest: a tool call's arguments are not a JSON object.
    """
    call_names: dict[str, str] = {}
    out: list[dict[str, Any]] = []
    for message in given:
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


def tool_calls(message: ollama.Message, first: int) -> list[dict[str, Any]] | None:
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
