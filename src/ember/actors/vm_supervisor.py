"""The VMSupervisor actor: the ``vm`` pool's worker, owning its node's libvirt connection.

It runs leased ``vm`` jobs as any job worker does (at most ``vm.vms_per_supervisor`` at
once, so the pool's size follows the ``vm`` queue's depth) and reaps: when it starts and
every ``vm.reap_interval_s`` after, VMs of this installation on its node that no live job
owns (a crashed supervisor's, a lost job's) are destroyed, their directories removed and
their rows marked ``failed`` (``vm_orphaned``). Ray places it where its memory reservation
(``vm.vms_per_supervisor`` VMs of ``vm.memory_mib``) fits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from ember.actors.job_worker import JobWorkerActor
from ember.config import EmberConfig
from ember.errors import EmberError
from ember.jobs.records import JobRecord
from ember.storage.clock import utcnow

__all__ = ["VMSupervisorActor"]

log = logging.getLogger(__name__)


class VMSupervisorActor(JobWorkerActor):
    """A job worker for ``vm`` jobs that reaps its node's orphaned VMs."""

    def __init__(self, config: EmberConfig, owner: str, hub: Any) -> None:
        super().__init__(config, owner, hub)
        self._config = config
        self._reaper: asyncio.Task[None] | None = None
        self.reaped: list[str] = self._reap()

    def _reap(self) -> list[str]:
        settings = self._config.vm
        grace_s = settings.max_timeout_s + 60
        try:
            runner = self._services.vm_runner
            records = self._services.vm_records
            reaped = runner.reap(lambda: records.owned(utcnow(), grace_s))
            runner.sweep(grace_s)
        except (EmberError, OSError) as exc:
            log.warning("cannot reap orphaned VMs: %s", exc)
            return []
        if reaped:
            log.info("reaped %d orphaned VM(s): %s", len(reaped), ", ".join(reaped))
        return reaped

    async def _reap_forever(self) -> None:
        while True:
            await asyncio.sleep(self._config.vm.reap_interval_s)
            found = await asyncio.to_thread(self._reap)
            self.reaped.extend(found)

    def _keep_reaping(self) -> None:
        """Start the periodic reaper on the actor's event loop (from its first call)."""
        if self._reaper is None or self._reaper.done():
            self._reaper = asyncio.create_task(self._reap_forever())

    async def run(self, job: JobRecord) -> str | None:
        self._keep_reaping()
        return await super().run(job)

    async def info(self) -> dict[str, Any]:
        self._keep_reaping()
        found = await super().info()
        accel = None
        with contextlib.suppress(EmberError):
            accel = self._services.vm_runner.known_accel()
        return {**found, "reaped": list(self.reaped), "accel": accel}
