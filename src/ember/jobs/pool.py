"""An in-process :class:`~ember.jobs.dispatcher.WorkerPool`: runners as asyncio tasks.

The Ray pool (``ember.actors``) puts each runner in its own actor; this one keeps them in the
current event loop, for a single process and for tests of everything above the actors.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from ember.jobs.records import JobRecord
from ember.jobs.runner import JobRunner

__all__ = ["LocalWorkerPool"]


class LocalWorkerPool:
    """``size`` runners, each running ``slots`` jobs at a time."""

    def __init__(self, make_runner: Callable[[str], JobRunner], size: int, slots: int = 1) -> None:
        self.runners = {f"local-{i}": make_runner(f"local-{i}") for i in range(size)}
        self._slots = slots
        self._busy = dict.fromkeys(self.runners, 0)
        self._tasks: set[asyncio.Task[JobRecord | None]] = set()

    def free_slots(self) -> list[str]:
        return [owner for owner, busy in self._busy.items() for _ in range(self._slots - busy)]

    async def start(self, worker_id: str, job: JobRecord) -> None:
        runner = self.runners[worker_id]
        self._busy[worker_id] += 1
        task = asyncio.create_task(runner.run(job))
        self._tasks.add(task)

        def done(finished: asyncio.Task[JobRecord | None]) -> None:
            self._tasks.discard(finished)
            self._busy[worker_id] -= 1

        task.add_done_callback(done)

    async def cancel(self, worker_id: str, job_id: str) -> None:
        runner = self.runners.get(worker_id)
        if runner is not None:
            runner.cancel(job_id)

    async def renewals(self) -> int:
        return sum(runner.renewals for runner in self.runners.values())

    async def drain(self) -> None:
        """Wait for every started job to end."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
