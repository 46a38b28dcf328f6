"""The dispatcher: leases queued jobs to free workers, and reaps leases nobody renews.

One :meth:`LeaseDispatcher.tick` does, in order: reap expired leases (a job whose worker died
is re-queued with ``attempts + 1`` until ``max_attempts``, then failed with ``worker_lost``; a
cancelling job whose worker died is cancelled), then, for every kind, claims as many of the
oldest queued jobs as its pool has free slots and starts each on the worker that holds its
lease. Because the truth is the ``jobs`` table, a dispatcher that restarts (or a whole cluster)
picks up where the last one stopped: queued jobs wait, running ones are reaped once their
lease runs out.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from ember.jobs.protocol import JobRepository, Publish, WorkerPool
from ember.jobs.records import JobRecord
from ember.jobs.states import JobState

__all__ = ["LeaseDispatcher"]

log = logging.getLogger(__name__)


class LeaseDispatcher:
    """Feeds each kind's pool from the ``jobs`` table."""

    def __init__(
        self,
        jobs: JobRepository,
        pools: Mapping[str, WorkerPool],
        publish: Publish,
        *,
        lease_ttl_s: float = 10.0,
    ) -> None:
        self._jobs = jobs
        self._pools = pools
        self._publish = publish
        self._ttl = lease_ttl_s
        self.requeued = 0

    async def tick(self) -> int:
        """Reap, then start what fits; returns how many jobs were started."""
        for record, _ in await asyncio.to_thread(self._jobs.reap):
            await self._announce_reaped(record)
        started = 0
        for kind, pool in self._pools.items():
            for worker_id in pool.free_slots():
                claimed = await asyncio.to_thread(self._jobs.claim, kind, worker_id, self._ttl, 1)
                if not claimed:
                    break
                await pool.start(worker_id, claimed[0])
                started += 1
        return started

    async def cancel(self, job_id: str) -> bool:
        """Tell the worker running ``job_id`` to stop now; returns whether one was told."""
        job = await asyncio.to_thread(self._jobs.get, job_id)
        pool = self._pools.get(job.kind)
        if pool is None or job.lease_owner is None or job.state is not JobState.CANCELLING:
            return False
        await pool.cancel(job.lease_owner, job_id)
        return True

    async def renewals(self) -> int:
        """Lease renewals of every pool."""
        return sum([await pool.renewals() for pool in self._pools.values()])

    async def _announce_reaped(self, record: JobRecord) -> None:
        extra = {"jobId": record.id, "requestId": record.request_id, "kind": record.kind}
        if record.state is JobState.QUEUED:
            self.requeued += 1
            log.warning("job re-queued: its worker stopped renewing the lease", extra=extra)
            data: dict[str, Any] = {"state": "queued", "reason": "worker_lost"}
            await self._publish(record.id, "state", data)
        elif record.state is JobState.FAILED:
            log.error("job failed: worker lost on every attempt", extra=extra)
            error = {"code": record.error_code, "detail": record.error_detail}
            await self._publish(record.id, "error", error)
            await self._publish(record.id, "state", {"state": "failed", "code": record.error_code})
        else:
            await self._publish(record.id, "state", {"state": record.state.value})
