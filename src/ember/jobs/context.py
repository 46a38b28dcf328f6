"""What a job handler gets: its job and a way to emit events."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from ember.jobs.records import JobRecord

__all__ = ["Emit", "EmitMany", "JobContext"]

Emit = Callable[[str, dict[str, Any]], Awaitable[int]]
"""Publishes one event of the job (type, data) and returns its sequence number."""

EmitMany = Callable[[Sequence[tuple[str, dict[str, Any]]]], Awaitable[list[int]]]
"""Publishes several events of the job in one call and returns their sequence numbers."""


class JobContext:
    """Passed to every handler. Events go to the job's stream and its ``job_events`` rows."""

    def __init__(self, job: JobRecord, emit: Emit, emit_many: EmitMany | None = None) -> None:
        self.job = job
        self._emit = emit
        self._emit_many = emit_many

    async def emit_many(self, events: Sequence[tuple[str, dict[str, Any]]]) -> list[int]:
        """Publish several events in order with one call to the hub (a burst of tokens)."""
        if self._emit_many is not None:
            return await self._emit_many(events)
        return [await self._emit(type_, data) for type_, data in events]

    async def emit(self, type_: str, data: dict[str, Any]) -> int:
        """Publish an event of any type; returns its sequence number."""
        return await self._emit(type_, data)

    async def log(self, message: str, **fields: Any) -> int:
        """A ``log`` event: a line for humans, with optional structured fields."""
        return await self._emit("log", {"message": message, **fields})

    async def progress(self, done: int, total: int | None = None, **fields: Any) -> int:
        """A ``progress`` event: ``done`` of ``total`` units (``total`` unknown: ``None``)."""
        return await self._emit("progress", {"done": done, "total": total, **fields})

    async def token(self, text: str) -> int:
        """A ``token`` event: a piece of streamed model output."""
        return await self._emit("token", {"text": text})
