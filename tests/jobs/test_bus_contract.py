"""LocalJobBus: the JobBus contract over a hub, a dispatcher and runner tasks in this process,
on each database; NoJobSystem, the bus of a process without a job system."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator
from typing import Any

import pytest

from ember.errors import NotReady
from ember.jobs.bus import LocalJobBus, NoJobSystem
from ember.jobs.dispatcher import LeaseDispatcher
from ember.jobs.events import SqlEventStore
from ember.jobs.hub import EventHub
from ember.jobs.kinds import KindRegistry
from ember.jobs.pool import LocalWorkerPool
from ember.jobs.protocol import JobBus
from ember.jobs.repository import SqlJobRepository
from ember.jobs.runner import JobRunner
from ember.storage import Database
from ember.testing.job_bus import JobBusContract
from tests.jobs.plugin import kinds

RING_SIZE = 64


class TestLocalJobBus(JobBusContract):
    """The dispatcher polls only every 30 s here (the tests start after its first look), so a
    job that starts at once was woken by ``submitted``."""

    short_job = ("steps", {"steps": 3, "step_s": 0.05})
    long_job = ("steps", {"steps": 6000, "step_s": 0.05})
    ring_size = RING_SIZE
    timeout_s = 10.0

    @pytest.fixture
    def jobs(self, database: Database) -> SqlJobRepository:
        return SqlJobRepository(database)

    @pytest.fixture
    async def bus(self, database: Database, jobs: SqlJobRepository) -> AsyncIterator[LocalJobBus]:
        registry = KindRegistry(kinds(None))
        hub = EventHub(SqlEventStore(database), ring_size=RING_SIZE, flush_interval_s=0.02)

        def runner(owner: str) -> JobRunner:
            return JobRunner(
                jobs,
                registry,
                hub.publish,
                owner,
                lease_ttl_s=5.0,
                renew_interval_s=0.1,
                publish_many=hub.publish_many,
            )

        pools = {name: LocalWorkerPool(runner, size=1, slots=2) for name in registry.names()}
        dispatcher = LeaseDispatcher(jobs, pools, hub.publish, lease_ttl_s=5.0)
        bus = LocalJobBus(hub, dispatcher, poll_s=30)
        ticked = asyncio.Event()
        tick = dispatcher.tick

        async def first_tick_seen() -> int:
            started = await tick()
            ticked.set()
            return started

        dispatcher.tick = first_tick_seen  # type: ignore[method-assign]
        bus.start()
        await ticked.wait()
        try:
            yield bus
        finally:
            for pool in pools.values():
                for runner_ in pool.runners.values():
                    for job_id in list(runner_._tasks):
                        runner_.cancel(job_id)
                await pool.drain()
            await bus.stop()


CALLS: dict[str, tuple[Any, ...]] = {
    "publish": ("job", "log", {}),
    "publish_many": ("job", [("log", {})]),
    "wait": ("job", 0, 0.1),
    "submitted": ("job",),
    "cancel": ("job",),
    "telemetry": (),
}


def test_every_job_bus_method_is_checked() -> None:
    methods = {name for name, _ in inspect.getmembers(JobBus) if not name.startswith("_")}
    assert methods == set(CALLS)


@pytest.mark.parametrize("method", sorted(CALLS))
async def test_no_job_system_refuses_every_live_call(method: str) -> None:
    with pytest.raises(NotReady, match="ember up") as refused:
        await getattr(NoJobSystem(), method)(*CALLS[method])
    assert refused.value.code == "not_ready"
