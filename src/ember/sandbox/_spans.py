"""What sandbox spans carry: the tier that runs the command (``ember.sandbox.tier``:
``bubblewrap`` or ``vm``), its wall-clock limit, and how it ended (``ember.sandbox.exit_code``,
``ember.sandbox.signal``, ``ember.sandbox.killed``: the limit that ended it). A command that
fails or is killed is a result, not a failed span.

And what sandboxes count: ``ember_sandbox_starts_total`` and ``ember_sandbox_start_seconds``
(:func:`record_start`), ``ember_sandbox_kills_total`` (:func:`record_kill`), by tier."""

from __future__ import annotations

from typing import Any

from opentelemetry.trace import Span

from ember.observability.metrics import Metrics
from ember.sandbox.protocol import CommandResult

__all__ = ["command_attributes", "record_kill", "record_result", "record_start"]


def command_attributes(tier: str, wall_s: float | None = None) -> dict[str, Any]:
    """The attributes a command's span starts with."""
    attributes: dict[str, Any] = {"ember.sandbox.tier": tier}
    if wall_s is not None:
        attributes["ember.sandbox.wall_s"] = wall_s
    return attributes


def record_result(current: Span, result: CommandResult) -> None:
    """Put how the command ended on ``current``."""
    if result.exit_code is not None:
        current.set_attribute("ember.sandbox.exit_code", result.exit_code)
    if result.signal is not None:
        current.set_attribute("ember.sandbox.signal", result.signal)
    if result.killed is not None:
        current.set_attribute("ember.sandbox.killed", result.killed)
    if result.stdout_truncated or result.stderr_truncated:
        current.set_attribute("ember.sandbox.output_truncated", True)


def record_start(metrics: Metrics, tier: str, seconds: float | None = None) -> None:
    """Count a sandbox of ``tier`` started, ``seconds`` after it was asked for (when known)."""
    metrics.inc("ember_sandbox_starts_total", tier=tier)
    if seconds is not None:
        metrics.observe("ember_sandbox_start_seconds", seconds, tier=tier)


def record_kill(metrics: Metrics, tier: str, result: CommandResult) -> None:
    """Count ``result`` when a limit ended it (``killed``)."""
    if result.killed is not None:
        metrics.inc("ember_sandbox_kills_total", tier=tier, limit=result.killed)
