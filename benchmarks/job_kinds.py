"""Job kinds the jobs benchmark runs (loaded through ``jobs.plugins``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ember.config import EmberConfig
from ember.jobs.context import JobContext
from ember.jobs.kinds import JobKind


class NoopInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n: int = 0


class TokensInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    events: int = Field(ge=1)
    batch: int = Field(256, ge=1)


async def noop(context: JobContext, payload: NoopInput) -> dict[str, Any]:
    return {"n": payload.n}


async def tokens(context: JobContext, payload: TokensInput) -> dict[str, Any]:
    sent = 0
    while sent < payload.events:
        count = min(payload.batch, payload.events - sent)
        await context.emit_many([("token", {"text": "tok"})] * count)
        sent += count
    return {"events": sent}


def kinds(config: EmberConfig) -> list[JobKind]:
    return [
        JobKind("bench-noop", NoopInput, noop, "Does nothing."),
        JobKind("bench-tokens", TokensInput, tokens, "Streams token events."),
    ]
