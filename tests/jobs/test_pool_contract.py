"""LocalWorkerPool: the WorkerPool contract over runner tasks in this process, on each
database."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from ember.jobs.events import SqlEventStore
from ember.jobs.hub import EventHub
from ember.jobs.kinds import KindRegistry
from ember.jobs.pool import LocalWorkerPool
from ember.jobs.repository import SqlJobRepository
from ember.jobs.runner import JobRunner
from ember.storage import Database
from ember.testing.worker_pool import WorkerPoolContract
from tests.jobs.plugin import kinds


class TestLocalWorkerPool(WorkerPoolContract):
    workers = 2
    slots = 2
    renew_interval_s = 1.0
    short_job = ("steps", {"steps": 3, "step_s": 0.05})
    long_job = ("steps", {"steps": 6000, "step_s": 0.05})
    timeout_s = 30.0

    @pytest.fixture
    def jobs(self, database: Database) -> SqlJobRepository:
        return SqlJobRepository(database)

    @pytest.fixture
    async def pool(
        self, database: Database, jobs: SqlJobRepository
    ) -> AsyncIterator[LocalWorkerPool]:
        registry = KindRegistry(kinds(None))
        hub = EventHub(SqlEventStore(database), flush_interval_s=0.02)

        def runner(owner: str) -> JobRunner:
            return JobRunner(
                jobs,
                registry,
                hub.publish,
                owner,
                lease_ttl_s=10.0,
                renew_interval_s=self.renew_interval_s,
                publish_many=hub.publish_many,
            )

        pool = LocalWorkerPool(runner, size=self.workers, slots=self.slots)
        flusher = asyncio.create_task(hub.run_flusher())
        try:
            yield pool
        finally:
            for runner_ in pool.runners.values():
                for job_id in list(runner_._tasks):
                    runner_.cancel(job_id)
            await pool.drain()
            flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flusher
