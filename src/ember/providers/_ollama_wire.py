"""Ollama's wire shapes: ember's options, messages and tool calls out, deltas and usage in,
and the per-call timeout the adapter sets on each HTTP request.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Sequence
from typing import Any

import httpx
import ollama

from ember.chat import ChatMessage, Delta, GenerationOptions, ToolCall, Usage
from ember.errors import ProviderBadRequest

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
    tool_calls: list[ToolCall] | None,
) -> Delta | None:
    """A part as a delta: the last one (``done``) always, others only when they carry
    something (thinking-only parts carry nothing of the answer)."""
    if part.done:
        finish = part.done_reason or "stop"
        return Delta(text, finish_reason=finish, usage=usage(part), tool_calls=tool_calls)
    return Delta(text, tool_calls=tool_calls) if text or tool_calls else None


def messages(given: Sequence[ChatMessage]) -> list[dict[str, Any]]:
    """ember's messages in Ollama's shape: a tool call's arguments go as an object, a ``tool``
    message names its tool (its ``name``, else the name of the call its ``tool_call_id`` is).

    :raises ProviderBadRequest: a tool call's arguments are not a JSON object.
    """
    call_names: dict[str, str] = {}
    out: list[dict[str, Any]] = []
    for message in given:
        item: dict[str, Any] = {"role": message.role, "content": message.content}
        if message.tool_calls:
            calls = []
            for call in message.tool_calls:
                call_names[call.id] = call.name
                if call.arguments is None:
                    raise ProviderBadRequest(
                        f"the arguments of the tool call {call.name!r} are not a JSON object"
                    )
                calls.append({"function": {"name": call.name, "arguments": call.arguments}})
            item["tool_calls"] = calls
        if message.role == "tool":
            tool_name = message.name or call_names.get(message.tool_call_id or "")
            if tool_name:
                item["tool_name"] = tool_name
        out.append(item)
    return out


def tool_calls(message: ollama.Message, first: int) -> list[ToolCall] | None:
    """Ollama's tool calls as ember's, with ids ``call_<n>`` numbered from ``first``."""
    if not message.tool_calls:
        return None
    return [
        ToolCall.of(f"call_{first + index}", call.function.name, call.function.arguments)
        for index, call in enumerate(message.tool_calls)
    ]
