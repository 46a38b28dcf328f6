"""The whole job system in one process (hub, dispatcher, runners as tasks) on each database,
with a few job kinds whose handlers let tests see what reached them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, Field

from ember.auth import Scope, SqlTokenRepository
from ember.errors import ProviderUnavailable
from ember.jobs.authority import SubmitterCheck
from ember.jobs.bus import LocalJobBus
from ember.jobs.context import JobContext
from ember.jobs.dispatcher import LeaseDispatcher
from ember.jobs.events import SqlEventStore
from ember.jobs.hub import EventHub
from ember.jobs.kinds import JobKind, KindRegistry
from ember.jobs.pool import LocalWorkerPool
from ember.jobs.records import JobRecord
from ember.jobs.repository import SqlJobRepository
from ember.jobs.runner import JobRunner
from ember.jobs.service import JobService
from ember.jobs.states import TERMINAL
from ember.storage import Database, SqlAuditLog


class EchoInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1)
    tokens: int = Field(3, ge=0, le=100_000)
    fail: bool = False


class SleepInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seconds: float = 60.0


MEMORY_WRITE = frozenset({Scope.MEMORY_WRITE})


@dataclass
class Seen:
    """What handlers observed."""

    started: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)


def make_kinds(seen: Seen) -> list[JobKind]:
    async def echo(context: JobContext, payload: EchoInput) -> dict[str, Any]:
        seen.started.append(context.job.id)
        for i in range(payload.tokens):
            await context.token(f"{payload.text}-{i}")
        if payload.fail:
            raise ProviderUnavailable("the model server went away")
        return {"echo": payload.text}

    async def sleep(context: JobContext, payload: SleepInput) -> dict[str, Any]:
        seen.started.append(context.job.id)
        try:
            await asyncio.sleep(payload.seconds)
        except asyncio.CancelledError:
            seen.cancelled.append(context.job.id)
            raise
        return {"slept": payload.seconds}

    async def crash(context: JobContext, payload: SleepInput) -> dict[str, Any]:
        raise ZeroDivisionError("division by zero")

    return [
        JobKind("echo", EchoInput, echo, "Echo tokens back."),
        JobKind("remember", EchoInput, echo, "Needs memory:write.", scopes=MEMORY_WRITE),
        JobKind("sleep", SleepInput, sleep, "Sleep."),
        JobKind("crash", SleepInput, crash, "Crash."),
        JobKind("slow", SleepInput, sleep, "Sleep past the limit.", timeout_s=0.2),
    ]


@dataclass
class System:
    service: JobService
    jobs: SqlJobRepository
    events: SqlEventStore
    hub: EventHub
    bus: LocalJobBus
    pools: dict[str, LocalWorkerPool]
    seen: Seen
    audit: SqlAuditLog

    async def until_final(self, job_id: str, timeout_s: float = 20.0) -> JobRecord:
        async with asyncio.timeout(timeout_s):
            while True:
                job = await asyncio.to_thread(self.jobs.get, job_id)
                if job.state in TERMINAL:
                    return job
                await asyncio.sleep(0.02)

    async def until(self, predicate, timeout_s: float = 20.0) -> None:
        async with asyncio.timeout(timeout_s):
            while not predicate():
                await asyncio.sleep(0.01)


@asynccontextmanager
async def running_system(
    database: Database,
    kinds: KindRegistry,
    seen: Seen,
    *,
    jobs: SqlJobRepository | None = None,
    lease_ttl_s: float = 2.0,
    renew_interval_s: float = 0.1,
) -> AsyncIterator[System]:
    """The job system over ``kinds`` in this process, running; stopped on exit (its jobs
    cancelled and its workers drained). ``jobs`` replaces the repository (a test's wrapper)."""
    jobs = SqlJobRepository(database) if jobs is None else jobs
    events = SqlEventStore(database)
    hub = EventHub(events, ring_size=64, flush_interval_s=0.02)

    def runner(owner: str) -> JobRunner:
        return JobRunner(
            jobs,
            kinds,
            hub.publish,
            owner,
            lease_ttl_s=lease_ttl_s,
            renew_interval_s=renew_interval_s,
            authority=SubmitterCheck(SqlTokenRepository(database)),
        )

    pools = {name: LocalWorkerPool(runner, size=2) for name in kinds.names()}
    dispatcher = LeaseDispatcher(jobs, pools, hub.publish, lease_ttl_s=lease_ttl_s)
    bus = LocalJobBus(hub, dispatcher, poll_s=0.05)
    audit = SqlAuditLog(database)
    service = JobService(jobs, events, kinds, bus, audit, max_active_per_principal=5)
    service.heartbeat_s = 0.2
    bus.start()
    try:
        yield System(service, jobs, events, hub, bus, pools, seen, audit)
    finally:
        for pool in pools.values():
            for runner_ in pool.runners.values():
                for job_id in [*runner_._tasks, *runner_._starting]:  # starting ones too
                    runner_.cancel(job_id)
            await pool.drain()
        await bus.stop()


@pytest.fixture
async def system(database: Database) -> AsyncIterator[System]:
    seen = Seen()
    async with running_system(database, KindRegistry(make_kinds(seen)), seen) as running:
        yield running
