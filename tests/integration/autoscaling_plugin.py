"""A job-kind plug-in for the autoscaling tests (loaded through ``jobs.plugins``, in Ray
workers too): kinds whose jobs hold their worker until the test releases them."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from ember.config import EmberConfig
from ember.jobs.context import JobContext
from ember.jobs.kinds import JobKind


class HoldInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    release: str
    """A file path: the job ends once it exists."""


async def hold(context: JobContext, payload: HoldInput) -> dict[str, Any]:
    """Wait until the ``release`` file exists."""
    while not Path(payload.release).exists():
        await asyncio.sleep(0.05)
    return {"held_on": context.job.lease_owner}


def kinds(config: EmberConfig) -> list[JobKind]:
    return [
        JobKind("hold", HoldInput, hold, "Hold a worker until released."),
        JobKind("hold2", HoldInput, hold, "The same, a second pool."),
    ]
