"""A job-kind plug-in for tests (loaded through ``jobs.plugins``, in Ray workers too):
kinds whose timing and output the tests control."""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ember.config import EmberConfig
from ember.jobs.context import JobContext
from ember.jobs.kinds import JobKind


class StepsInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    steps: int = Field(10, ge=0, le=10_000)
    step_s: float = Field(0.1, ge=0, le=10)


class BurstInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    events: int = Field(1000, ge=1, le=1_000_000)
    batch: int = Field(500, ge=1, le=10_000)


async def steps(context: JobContext, payload: StepsInput) -> dict[str, Any]:
    """``steps`` progress events ``step_s`` apart; logs that a cancel reached it."""
    try:
        for done in range(1, payload.steps + 1):
            await asyncio.sleep(payload.step_s)
            await context.progress(done, payload.steps)
    except asyncio.CancelledError:
        await context.log("cancelled inside the handler")
        raise
    return {"steps": payload.steps, "attempt": context.job.attempts}


async def burst(context: JobContext, payload: BurstInput) -> dict[str, Any]:
    """``events`` token events, ``batch`` per call to the hub."""
    sent = 0
    while sent < payload.events:
        count = min(payload.batch, payload.events - sent)
        await context.emit_many([("token", {"i": sent + i}) for i in range(count)])
        sent += count
    return {"events": sent}


def kinds(config: EmberConfig) -> list[JobKind]:
    return [
        JobKind("steps", StepsInput, steps, "Progress events on a timer."),
        JobKind("burst", BurstInput, burst, "Many token events fast."),
    ]
