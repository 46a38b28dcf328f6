"""The values providers take and return: messages, options, completions, stream deltas,
model descriptions, health. Plain frozen dataclasses, so they cross process boundaries."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

__all__ = [
    "Capability",
    "ChatMessage",
    "Completion",
    "Delta",
    "GenerationOptions",
    "Health",
    "ModelInfo",
    "Usage",
]

Role = Literal["system", "user", "assistant", "tool"]


class Capability(StrEnum):
    """What a provider can do."""

    CHAT = "chat"
    GENERATE = "generate"
    EMBED = "embed"
    STREAM = "stream"
    TOOLS = "tools"


@dataclass(frozen=True)
class ChatMessage:
    """One chat turn. ``tool_calls`` (assistant) and ``tool_call_id`` (tool) are passed
    through in the OpenAI shape to providers that support tools."""

    role: Role
    content: str
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None


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
    tool_calls: list[dict[str, Any]] | None = None


@dataclass(frozen=True)
class Delta:
    """One piece of a streamed answer. The last delta has ``finish_reason`` and, where the
    provider reports it, ``usage``."""

    text: str
    finish_reason: str | None = None
    usage: Usage | None = None
    tool_calls: list[dict[str, Any]] | None = None


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
