"""The Ray :class:`~ember.jobs.dispatcher.WorkerPool`: JobWorker actors of one kind.

Tracks the jobs each worker is running through the ``run`` calls it made. When a call fails
because the actor died, the pool replaces the worker and expires the lease of the job it was
running, so the dispatcher's next reap re-queues it at once instead of after the lease TTL.
:meth:`RayWorkerPool.resize` grows the pool at once and shrinks it only by idle workers.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from typing import Any

import ray
from ray.exceptions import RayActorError

from ember.jobs.protocol import JobRepository
from ember.jobs.records import JobRecord

__all__ = ["RayWorkerPool"]

log = logging.getLogger(__name__)

WorkerFactory = Callable[[str], Any]
"""Starts a JobWorker actor for a lease owner id and returns its handle."""


class RayWorkerPool:
    """``size`` worker actors for ``kind`` to start with, each running up to ``slots`` jobs."""

    def __init__(
        self,
        kind: str,
        size: int,
        slots: int,
        factory: WorkerFactory,
        jobs: JobRepository,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self.kind = kind
        self._slots = slots
        self._factory = factory
        self._jobs = jobs
        self._on_change = on_change
        self.workers: dict[str, Any] = {}
        self._starting: dict[str, Any] = {}
        self._running: dict[str, set[str]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._renewals: dict[str, int] = {}
        self.replaced = 0
        self.retired = 0
        for _ in range(size):
            self._add()

    @property
    def size(self) -> int:
        """Workers the pool has, started or still starting."""
        return len(self.workers)

    @property
    def started(self) -> int:
        """Workers that have finished starting."""
        self._poll_starting()
        return len(self.workers) - len(self._starting)

    @property
    def running(self) -> int:
        """Jobs the pool's workers are running."""
        return sum(len(jobs) for jobs in self._running.values())

    def resize(self, size: int) -> int:
        """Grow to ``size`` workers at once, or shrink towards it by retiring idle workers
        that have finished starting (never one running a job, nor one still starting, so the
        pool may stay above ``size`` until more are idle). Returns the size reached."""
        if size < 0:
            raise ValueError(f"a pool cannot have {size} workers")
        while len(self.workers) < size:
            self._add()
        if len(self.workers) > size:
            self._poll_starting()
            idle = [
                owner
                for owner in reversed(self.workers)
                if owner not in self._starting and not self._running[owner]
            ]
            for owner in idle[: len(self.workers) - size]:
                self._retire(owner)
        return len(self.workers)

    def _retire(self, owner: str) -> None:
        worker = self.workers.pop(owner)
        del self._running[owner]
        ray.kill(worker, no_restart=True)
        self.retired += 1
        log.info("retired idle worker %s", owner, extra={"kind": self.kind})

    def _add(self) -> str:
        owner = f"{self.kind}-{uuid.uuid4().hex[:12]}"
        worker = self._factory(owner)
        self.workers[owner] = worker
        self._starting[owner] = worker.info.remote()
        self._running[owner] = set()
        return owner

    def _poll_starting(self) -> None:
        if self._starting:
            done, _ = ray.wait(
                list(self._starting.values()), timeout=0, num_returns=len(self._starting)
            )
            for owner in [o for o, ref in self._starting.items() if ref in done]:
                del self._starting[owner]

    def free_slots(self) -> list[str]:
        """Free slots of workers that have finished starting (a job leased to a worker that
        is still importing would wait on it with its lease running out)."""
        self._poll_starting()
        return [
            owner
            for owner, running in self._running.items()
            if owner not in self._starting
            for _ in range(self._slots - len(running))
        ]

    async def start(self, worker_id: str, job: JobRecord) -> None:
        self._running[worker_id].add(job.id)
        ref = self.workers[worker_id].run.remote(job)
        task = asyncio.get_running_loop().create_task(self._watch(worker_id, job.id, ref))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def cancel(self, worker_id: str, job_id: str) -> None:
        worker = self.workers.get(worker_id)
        if worker is not None:
            try:
                await worker.cancel.remote(job_id)
            except RayActorError:
                log.warning("cancel: the worker is gone", extra={"jobId": job_id})

    async def renewals(self) -> int:
        """Renewals of every worker that has started (one still waiting for room on the
        cluster would not answer, and has renewed nothing)."""
        self._poll_starting()
        for owner, worker in list(self.workers.items()):
            if owner in self._starting:
                continue
            try:
                info = await worker.info.remote()
            except RayActorError:
                continue
            self._renewals[owner] = int(info["renewals"])
        return sum(self._renewals.values())

    async def _watch(self, worker_id: str, job_id: str, ref: Any) -> None:
        try:
            await ref
        except RayActorError:
            for orphan in self._replace(worker_id):
                await asyncio.to_thread(self._jobs.expire, orphan, worker_id)
        except Exception:
            log.exception("the worker's run call failed", extra={"jobId": job_id})
        finally:
            running = self._running.get(worker_id)
            if running is not None:
                running.discard(job_id)
            self._on_change()

    def _replace(self, worker_id: str) -> set[str]:
        """Swap a dead worker for a new one; returns the jobs it was running."""
        if worker_id not in self.workers:
            return set()
        log.warning("worker %s died; starting a new one", worker_id, extra={"kind": self.kind})
        dead = self.workers.pop(worker_id)
        self._starting.pop(worker_id, None)
        orphaned = self._running.pop(worker_id, set())
        ray.kill(dead, no_restart=True)
        self.replaced += 1
        self._add()
        return orphaned
