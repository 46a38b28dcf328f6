"""The Ollama request bodies and their translation into ember's messages and options.

Unsupported fields that change the answer are a 400 naming the field
(:func:`~ember.serve_app.compat.shared.unsupported`); unknown fields are ignored.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ember.chat import MAX_COMPLETION_TOKENS, MAX_MESSAGES, ChatMessage, GenerationOptions, ToolCall
from ember.errors import BadRequest, ValidationFailed
from ember.serve_app.compat.shared import EmberOverrides, keep_alive_seconds, unsupported

__all__ = [
    "ChatIn",
    "EmbedIn",
    "EmbeddingsIn",
    "GenerateIn",
    "OllamaMessageIn",
    "ShowIn",
    "chat_messages",
    "generation_options",
]


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class OllamaMessageIn(_Body):
    role: Literal["system", "user", "assistant", "tool"]
    content: str | None = None
    images: list[str] | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_name: str | None = None


class _Call(_Body):
    model: str = Field(min_length=1, max_length=500)
    stream: bool = True
    options: dict[str, Any] | None = None
    keep_alive: float | str | None = None
    format: str | dict[str, Any] | None = None
    think: bool | str | None = None
    ember: EmberOverrides | None = None


class ChatIn(_Call):
    messages: list[OllamaMessageIn] = Field(default_factory=list, max_length=MAX_MESSAGES)
    tools: list[dict[str, Any]] | None = None


class GenerateIn(_Call):
    prompt: str | None = None
    images: list[str] | None = None
    system: str | None = None
    template: str | None = None
    suffix: str | None = None
    context: list[int] | None = None
    raw: bool | None = None


class EmbedIn(_Body):
    model: str = Field(min_length=1, max_length=500)
    input: str | list[str]
    dimensions: int | None = None
    truncate: bool | None = None
    keep_alive: float | str | None = None
    ember: EmberOverrides | None = None


class EmbeddingsIn(_Body):
    model: str = Field(min_length=1, max_length=500)
    prompt: str = ""
    keep_alive: float | str | None = None
    ember: EmberOverrides | None = None


class ShowIn(_Body):
    model: str | None = Field(None, min_length=1)
    name: str | None = Field(None, min_length=1)


def _bad_option(name: str, kind: str) -> BadRequest:
    return BadRequest(f"options.{name} must be {kind}", extra={"param": f"options.{name}"})


def _option(options: dict[str, Any], name: str, kind: type[float] | type[int]) -> Any:
    value = options.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad_option(name, "a number")
    if kind is int and not isinstance(value, int):
        raise _bad_option(name, "an integer")
    return value


def generation_options(body: _Call, tools: list[dict[str, Any]] | None = None) -> GenerationOptions:
    """The options of a chat or generate body (``tools`` for a chat).

    :raises BadRequest: ``format`` or ``think`` is set, or an option has the wrong type.
    :raises ValidationFailed: ``num_predict`` is over :data:`~ember.chat.MAX_COMPLETION_TOKENS`.
    """
    if body.format not in (None, ""):
        raise unsupported("format", "ember does not constrain answers to JSON")
    if body.think not in (None, False):
        raise unsupported("think", "ember does not run models in thinking mode")
    options = body.options or {}
    stop = options.get("stop") or []
    if isinstance(stop, str):
        stop = [stop]
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise _bad_option("stop", "a string or a list of strings")
    limit = _option(options, "num_predict", int)
    if limit is not None and limit > MAX_COMPLETION_TOKENS:
        path, detail = "options.num_predict", f"must be at most {MAX_COMPLETION_TOKENS}"
        raise ValidationFailed(
            f"{path} {detail}",
            errors=[{"path": path, "message": detail, "type": "less_than_equal"}],
            extra={"param": path},
        )
    return GenerationOptions(
        max_tokens=limit if limit is not None and limit > 0 else None,
        temperature=_option(options, "temperature", float),
        top_p=_option(options, "top_p", float),
        stop=tuple(stop),
        seed=_option(options, "seed", int),
        tools=tools or None,
        keep_alive_s=keep_alive_seconds(body.keep_alive),
    )


def chat_messages(body: ChatIn) -> list[ChatMessage]:
    """Ollama's turns as ember's messages: a tool call gets an id (``call_<turn>_<n>`` unless
    it has one) and its arguments' JSON text, a tool answer the id of the call it answers (by
    ``tool_name``, else the first call not answered yet).

    :raises BadRequest: images are sent, or a tool call's ``function`` is not an object.
    """
    found: list[ChatMessage] = []
    pending: list[tuple[str, str]] = []
    for index, message in enumerate(body.messages):
        if message.images:
            raise unsupported(f"messages.{index}.images", "ember's models read text only")
        calls, answers = None, None
        if message.tool_calls:
            calls = [
                _tool_call(call, f"messages.{index}.tool_calls.{n}", f"call_{index}_{n}")
                for n, call in enumerate(message.tool_calls)
            ]
            pending = [(c.id, c.name) for c in calls]
        if message.role == "tool" and pending:
            match = next((p for p in pending if p[1] == message.tool_name), pending[0])
            pending.remove(match)
            answers = match[0]
        found.append(
            ChatMessage(
                message.role,
                message.content or "",
                tool_calls=calls,
                tool_call_id=answers,
            )
        )
    return found


def _tool_call(call: dict[str, Any], param: str, default_id: str) -> ToolCall:
    """One of Ollama's tool calls, ``{"function": {"name", "arguments"}}`` (arguments an
    object, or text), as ember's; without an ``id`` it gets ``default_id``.

    :raises BadRequest: ``function`` is not an object.
    """
    function = call.get("function") or {}
    if not isinstance(function, dict):
        raise BadRequest(f"{param}: `function` must be an object", extra={"param": param})
    given = call.get("id")
    return ToolCall.from_value(
        given if isinstance(given, str) and given else default_id,
        str(function.get("name", "")),
        function.get("arguments", {}),
    )
