"""The values providers take and return: messages, tool calls, options, completions, stream
deltas, model descriptions, health. Plain frozen dataclasses, so they cross process boundaries.
This module imports nothing else of ember."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

__all__ = [
    "MAX_COMPLETION_TOKENS",
    "MAX_MESSAGES",
    "Capability",
    "ChatMessage",
    "Completion",
    "Delta",
    "GenerationOptions",
    "Health",
    "ModelInfo",
    "ToolCall",
    "Usage",
]

Role = Literal["system", "user", "assistant", "tool"]

MAX_COMPLETION_TOKENS = 131_072
"""The most tokens one request may ask a model to produce (``max_tokens`` and its kin)."""
MAX_MESSAGES = 1000
"""The most messages one chat request may send."""


class Capability(StrEnum):
    """What a provider can do."""

    CHAT = "chat"
    GENERATE = "generate"
    EMBED = "embed"
    STREAM = "stream"
    TOOLS = "tools"


@dataclass(frozen=True)
class ToolCall:
    """One call of a function tool: one the model asked for, or one an assistant turn made.

    ``raw_arguments`` is the arguments text exactly as received, and what goes out where a
    wire format carries text (OpenAI's). ``arguments`` is that text parsed, once, when it is a
    JSON object (a blank text is ``{}``); ``None`` flags a text that is not a JSON object
    (invalid JSON, or an array, string, number or ``null``), which is kept, never raised on
    here: each wire format decides what it can do with it.

    Build one with :meth:`parse` (from the text), :meth:`of` (from an object),
    :meth:`from_value` (either) or :meth:`from_openai` (the OpenAI shape);
    :meth:`to_openai` writes the OpenAI shape.
    """

    id: str
    name: str
    arguments: dict[str, Any] | None
    raw_arguments: str

    @classmethod
    def parse(cls, id: str, name: str, raw_arguments: str) -> ToolCall:
        """A call whose arguments arrived as JSON text."""
        return cls(id, name, _json_object(raw_arguments), raw_arguments)

    @classmethod
    def of(cls, id: str, name: str, arguments: Mapping[str, Any]) -> ToolCall:
        """A call whose arguments arrived as an object (as Ollama sends them); the text is
        their ``json.dumps``."""
        parsed = dict(arguments)
        return cls(id, name, parsed, json.dumps(parsed))

    @classmethod
    def from_value(cls, id: str, name: str, arguments: object) -> ToolCall:
        """A call whose arguments are text, an object, ``None`` (no arguments: ``{}``) or any
        other JSON value (kept as its text; not an object, so ``arguments`` is ``None``)."""
        if isinstance(arguments, str):
            return cls.parse(id, name, arguments)
        if arguments is None:
            return cls.of(id, name, {})
        if isinstance(arguments, Mapping):
            return cls.of(id, name, arguments)
        return cls.parse(id, name, json.dumps(arguments))

    @classmethod
    def from_openai(cls, call: object) -> ToolCall:
        """A call in the OpenAI shape, ``{"id", "type": "function", "function": {"name",
        "arguments"}}``; a missing ``id`` is ``""``, ``arguments`` as :meth:`from_value`.

        :raises ValueError: ``call`` has no ``function`` object with a string ``name``, or
            its ``id`` is not a string.
        """
        if not isinstance(call, Mapping):
            raise ValueError("a tool call must be an object")
        function = call.get("function")
        if not isinstance(function, Mapping):
            raise ValueError("a tool call needs a `function` object")
        name = function.get("name")
        if not isinstance(name, str):
            raise ValueError("a tool call's `function` needs a string `name`")
        id = call.get("id")
        if id is not None and not isinstance(id, str):
            raise ValueError("a tool call's `id` must be a string")
        return cls.from_value(id or "", name, function.get("arguments"))

    def to_openai(self) -> dict[str, Any]:
        """The OpenAI shape, the arguments as the text received."""
        function = {"name": self.name, "arguments": self.raw_arguments}
        return {"id": self.id, "type": "function", "function": function}


def _json_object(text: str) -> dict[str, Any] | None:
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


@dataclass(frozen=True)
class ChatMessage:
    """One chat turn. ``tool_calls`` (assistant) and ``tool_call_id`` (tool) go to
    providers that support tools."""

    role: Role
    content: str
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None

    def to_openai(self) -> dict[str, Any]:
        """The OpenAI chat-message shape (llama.cpp's chat API takes the same): unset fields
        left out, tool calls in their OpenAI shape, and ``content`` null on an assistant turn
        that only calls tools."""
        out: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.name is not None:
            out["name"] = self.name
        if self.tool_calls:
            out["tool_calls"] = [call.to_openai() for call in self.tool_calls]
            out["content"] = self.content or None
        if self.tool_call_id is not None:
            out["tool_call_id"] = self.tool_call_id
        return out


@dataclass(frozen=True)
class GenerationOptions:
    """Sampling and limits of one call; ``None`` means the provider's default."""

    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None
    tools: list[dict[str, Any]] | None = None
    timeout_s: float | None = None
    keep_alive_s: float | None = None
    """How long a hosted model stays loaded after this call, as Ollama's ``keep_alive``:
    ``0`` unloads it at once, a negative value keeps it until evicted for room; ``None`` is
    the configured default. Providers that host no models ignore it."""


@dataclass(frozen=True)
class Usage:
    """Tokens one call consumed."""

    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class Completion:
    """A whole answer."""

    text: str
    model: str
    provider: str
    finish_reason: str | None = None
    usage: Usage = field(default_factory=Usage)
    tool_calls: list[ToolCall] | None = None


@dataclass(frozen=True)
class Delta:
    """One piece of a streamed answer. The last delta has ``finish_reason`` and, where the
    provider reports it, ``usage``."""

    text: str
    finish_reason: str | None = None
    usage: Usage | None = None
    tool_calls: list[ToolCall] | None = None


@dataclass(frozen=True)
class ModelInfo:
    """A model a provider serves."""

    name: str
    provider: str
    digest: str | None = None
    size_bytes: int | None = None
    context_length: int | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Health:
    """Whether the provider answers, how fast, and what it said."""

    ok: bool
    detail: str
    latency_ms: float | None = None
