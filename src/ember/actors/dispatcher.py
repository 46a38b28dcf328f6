"""The JobDispatcher actor: one per cluster, a shell over :class:`ember.jobs.dispatcher.Dispatcher`
that owns the worker pools and runs the dispatch loop."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable
from typing import Any

from ember.actors.worker_pool import RayWorkerPool
from ember.config import EmberConfig
from ember.jobs.dispatcher import Dispatcher
from ember.jobs.repository import SqlJobRepository
from ember.jobs.states import JobState
from ember.jobs.wiring import build_kinds
from ember.observability import configure_logging
from ember.storage.database import Database

__all__ = ["JobDispatcherActor"]

log = logging.getLogger(__name__)


class JobDispatcherActor:
    """Leases queued jobs to worker actors; see :mod:`ember.jobs.dispatcher`."""

    def __init__(
        self, config: EmberConfig, hub: Any, worker_factory: Callable[[str, str], Any]
    ) -> None:
        configure_logging("ember-dispatcher", config.logging.level, config.logging.format)
        self._config = config
        self._database = Database.from_config(config)
        self._jobs = SqlJobRepository(self._database)
        self._hub = hub
        self._wake = asyncio.Event()
        kinds = build_kinds(config, self._database).names()
        settings = config.jobs
        self.pools = {
            kind: RayWorkerPool(
                kind,
                settings.workers_per_kind,
                settings.slots_per_worker,
                functools.partial(worker_factory, kind),
                self._jobs,
                on_change=self._wake.set,
            )
            for kind in kinds
        }

        async def publish(job_id: str, type_: str, data: dict[str, Any]) -> int:
            seq: int = await self._hub.publish.remote(job_id, type_, data)
            return seq

        self._dispatcher = Dispatcher(
            self._jobs, self.pools, publish, lease_ttl_s=settings.lease_ttl_s
        )
        self._loop: asyncio.Task[None] | None = None

    async def start(self) -> bool:
        """Start the dispatch loop (idempotent); returns once it runs."""
        if self._loop is None or self._loop.done():
            self._loop = asyncio.get_running_loop().create_task(self._run())
        return True

    async def notify(self) -> None:
        """Look at the queue now."""
        self._wake.set()

    async def cancel(self, job_id: str) -> bool:
        return await self._dispatcher.cancel(job_id)

    async def stats(self) -> dict[str, Any]:
        counts = await asyncio.to_thread(self._jobs.counts)
        return {
            "renewals": await self._dispatcher.renewals(),
            "requeued": self._dispatcher.requeued,
            "replaced": sum(pool.replaced for pool in self.pools.values()),
            "workers": {kind: list(pool.workers) for kind, pool in self.pools.items()},
            "queue_depth": {
                kind: n for (kind, state), n in counts.items() if state is JobState.QUEUED
            },
        }

    async def workers(self, kind: str) -> dict[str, Any]:
        """The worker handles of ``kind`` by lease owner (for tests and the CLI)."""
        return dict(self.pools[kind].workers)

    async def _run(self) -> None:
        poll = self._config.jobs.poll_interval_s
        while True:
            try:
                await self._dispatcher.tick()
            except Exception:
                log.exception("dispatch tick failed; retrying")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(poll):
                    await self._wake.wait()
            self._wake.clear()
