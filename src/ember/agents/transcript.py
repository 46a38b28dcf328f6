"""What an agent run did, as a JSON-serializable record to store with its job.

The :class:`Transcript` is updated in place after every model answer and every tool result,
so a cancelled or failed run still has everything up to that point
(:attr:`ember.agents.loop.AgentLoop.transcript`). :meth:`Transcript.to_dict` is its stored
shape (documented in ``docs/agents.md``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from ember.chat import ChatMessage, Usage
from ember.errors import EmberError, error_for_code

__all__ = ["Limit", "RunStatus", "Step", "Transcript"]

RunStatus = Literal[
    "pending", "running", "completed", "limit_exceeded", "budget_exceeded", "failed", "cancelled"
]
"""``pending`` before :meth:`~ember.agents.loop.AgentLoop.run`; ``running`` while it runs;
``completed`` when the model answered without tool calls; ``limit_exceeded`` when a limit of
the profile stopped it; ``budget_exceeded`` when the router's budgets refused a call;
``failed`` when a model call failed otherwise; ``cancelled`` when its task was cancelled."""

Limit = Literal["steps", "wall_time", "tokens", "cost"]


@dataclass
class Step:
    """One model call and the tool calls of its answer (each one's outcome, in order)."""

    step: int
    provider: str
    model: str
    finish_reason: str | None
    usage: Usage
    cost_usd: float
    duration_s: float
    tool_calls: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "provider": self.provider,
            "model": self.model,
            "finish_reason": self.finish_reason,
            "usage": _usage(self.usage),
            "cost_usd": self.cost_usd,
            "duration_s": round(self.duration_s, 6),
            "tool_calls": list(self.tool_calls),
        }


def _usage(usage: Usage) -> dict[str, int]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }


@dataclass
class Transcript:
    """The messages sent and received (tool calls and results included), per-step usage and
    how the run ended: ``answer`` (completed), ``limit`` (limit_exceeded) and ``error``
    (``{"code", "detail", ...}`` for every status but completed)."""

    profile: str
    model: str
    messages: list[ChatMessage] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    status: RunStatus = "pending"
    answer: str | None = None
    limit: Limit | None = None
    error: dict[str, Any] | None = None
    duration_s: float = 0.0

    @property
    def usage(self) -> Usage:
        """The sum over every step."""
        return Usage(
            sum(step.usage.prompt_tokens for step in self.steps),
            sum(step.usage.completion_tokens for step in self.steps),
        )

    @property
    def cost_usd(self) -> float:
        return sum(step.cost_usd for step in self.steps)

    def fail(self, status: RunStatus, error: EmberError) -> None:
        """End with ``status`` and ``error`` (its code, detail and extra)."""
        self.status = status
        self.error = {"code": error.code, "detail": error.detail, **error.extra}

    def raise_for_status(self) -> None:
        """Raise the run's error again (as its class, from the stored code) unless it
        completed: for callers that want a stopped run to fail their job."""
        if self.status == "completed" or self.error is None:
            return
        extra = {k: v for k, v in self.error.items() if k not in ("code", "detail")}
        raise error_for_code(self.error["code"])(self.error["detail"], extra=extra)

    def to_dict(self) -> dict[str, Any]:
        """The stored shape: only JSON types."""
        return {
            "profile": self.profile,
            "model": self.model,
            "status": self.status,
            "answer": self.answer,
            "limit": self.limit,
            "error": self.error,
            "usage": _usage(self.usage),
            "cost_usd": self.cost_usd,
            "duration_s": round(self.duration_s, 6),
            "steps": [step.to_dict() for step in self.steps],
            "messages": [message.to_openai() for message in self.messages],
        }
