"""The JobDispatcher actor: one per cluster, a shell over
:class:`ember.jobs.dispatcher.LeaseDispatcher` that owns the worker pools and runs the dispatch
loop.

Before a tick (at most once per ``jobs.poll_interval_s``) it sizes every pool: the kind's
demand is its queued jobs plus the jobs its pool runs, and a
:class:`~ember.placement.scaling.ScalingPolicy` per kind (``jobs.workers_min`` to
``jobs.workers_max``, ``jobs.jobs_per_worker_target`` jobs a worker, ``jobs.scale_cooldown_s``)
turns that into a size. Workers wanted but not yet started that do not fit in the cluster's
free resources become a request to Ray's autoscaler (:class:`~ember.cluster.ResourceRequests`),
together with the ``demand`` of other pools (the model hosts): a cluster holds one standing
request, so this actor makes it for all of them.

Ray restarts it when it dies; the restarted one starts its loop by itself and picks up from the
``jobs`` table (its workers died with it: their jobs are queued again once their leases run
out).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from ember.actors.job_bus import RayJobBus
from ember.actors.placement_groups import ray_resource_requests
from ember.actors.singleton import start_after_restart
from ember.actors.worker_pool import RayWorkerPool
from ember.config import EmberConfig
from ember.jobs.dispatcher import LeaseDispatcher
from ember.jobs.repository import SqlJobRepository
from ember.jobs.states import JobState
from ember.observability import configure_logging
from ember.placement.requests import Bundle, ResourceRequests
from ember.placement.scaling import ScalingPolicy
from ember.services import Services

__all__ = ["JobDispatcherActor"]

log = logging.getLogger(__name__)

Demand = Callable[[], Awaitable[tuple[list[dict[str, float]], list[dict[str, float]]]]]
"""Another pool's ``(desired, waiting)`` bundles, as :meth:`ResourceRequests.update` takes."""


class JobDispatcherActor:
    """Leases queued jobs to worker actors; see :mod:`ember.jobs.dispatcher`."""

    def __init__(
        self,
        config: EmberConfig,
        hub: Any,
        worker_factory: Callable[[str, str], Any],
        demand: Demand | None = None,
    ) -> None:
        configure_logging("ember-dispatcher", config.logging.level, config.logging.format)
        self._config = config
        services = Services.build(config)
        self._jobs = SqlJobRepository(services.database)
        self._hub = hub
        self._wake = asyncio.Event()
        kinds = services.kinds.names()
        settings = config.jobs
        pools = {kind: config.job_pool(kind) for kind in kinds}
        self.policies = {kind: ScalingPolicy.of(pools[kind][0]) for kind in kinds}
        self.targets = {kind: pools[kind][0].min_size for kind in kinds}
        self._requests: ResourceRequests = ray_resource_requests()
        self._demand = demand
        self._scaled_at = -float("inf")
        self.pools = {
            kind: RayWorkerPool(
                kind,
                pools[kind][0].min_size,
                pools[kind][1],
                functools.partial(worker_factory, kind),
                self._jobs,
                on_change=self._wake.set,
            )
            for kind in kinds
        }

        self._dispatcher = LeaseDispatcher(
            self._jobs, self.pools, RayJobBus(hub).publish, lease_ttl_s=settings.lease_ttl_s
        )
        self._loop: asyncio.Task[None] | None = None
        start_after_restart()

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
            "pools": {
                kind: {"size": pool.size, "target": self.targets[kind], "running": pool.running}
                for kind, pool in self.pools.items()
            },
            "retired": sum(pool.retired for pool in self.pools.values()),
            "resource_request": self._requests.requested,
            "queue_depth": {
                kind: n for (kind, state), n in counts.items() if state is JobState.QUEUED
            },
        }

    async def workers(self, kind: str) -> dict[str, Any]:
        """The worker handles of ``kind`` by lease owner (for tests and the CLI)."""
        return dict(self.pools[kind].workers)

    async def _scale(self) -> None:
        """Size every pool for its kind's demand now, and ask for room for what does not fit."""
        counts = await asyncio.to_thread(self._jobs.counts)
        desired: list[Bundle] = []
        waiting: list[Bundle] = []
        for kind, pool in self.pools.items():
            pool_config = self._config.job_pool(kind)[0]
            bundle: Bundle = {"CPU": pool_config.num_cpus}
            if pool_config.memory_bytes:
                bundle = {**bundle, "memory": float(pool_config.memory_bytes)}
            demand = counts.get((kind, JobState.QUEUED), 0) + pool.running
            target = self.policies[kind].desired(pool.size, demand)
            self.targets[kind] = target
            pool.resize(target)
            desired += [bundle] * target
            waiting += [bundle] * max(0, target - pool.started)
        if self._demand is not None:
            more_desired, more_waiting = await self._demand()
            desired += more_desired
            waiting += more_waiting
        await asyncio.to_thread(self._requests.update, desired, waiting)

    async def _run(self) -> None:
        poll = self._config.jobs.poll_interval_s
        loop = asyncio.get_running_loop()
        while True:
            if loop.time() - self._scaled_at >= poll:
                self._scaled_at = loop.time()
                try:
                    await self._scale()
                except Exception:
                    log.exception("sizing the worker pools failed; retrying")
            try:
                await self._dispatcher.tick()
            except Exception:
                log.exception("dispatch tick failed; retrying")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(poll):
                    await self._wake.wait()
            self._wake.clear()
