"""The JobWorker actor: runs leased jobs of one kind with a :class:`ember.jobs.runner.JobRunner`.

An async actor, so a cancel arrives while a job runs and raises ``CancelledError`` inside the
handler. Its services come from :func:`~ember.actors.cluster_services.cluster_services`;
events go to the EventHub actor through the job bus; the lease is renewed in the job's row.
"""

from __future__ import annotations

import os
from typing import Any

import ray

from ember.actors.cluster_services import cluster_services
from ember.config import EmberConfig
from ember.jobs.authority import SubmitterCheck
from ember.jobs.records import JobRecord
from ember.jobs.repository import SqlJobRepository
from ember.jobs.runner import JobRunner
from ember.observability import configure_logging

__all__ = ["JobWorkerActor"]


class JobWorkerActor:
    """Runs jobs for the lease owner ``owner``."""

    def __init__(self, config: EmberConfig, owner: str, hub: Any) -> None:
        configure_logging("ember-worker", config.logging.level, config.logging.format)
        services = cluster_services(config, service="ember-worker", hub=hub)
        self._services = services
        bus = services.bus
        assert bus is not None
        self._runner = JobRunner(
            SqlJobRepository(services.database),
            services.kinds,
            bus.publish,
            owner,
            lease_ttl_s=config.jobs.lease_ttl_s,
            renew_interval_s=config.jobs.renew_interval_s,
            publish_many=bus.publish_many,
            authority=SubmitterCheck(services.tokens),
            tracer=services.tracing.tracer("ember.jobs"),
            metrics=services.metrics,
        )

    async def run(self, job: JobRecord) -> str | None:
        """Run ``job`` to its end; returns its final state (``None``: lease lost)."""
        final = await self._runner.run(job)
        return final.state.value if final is not None else None

    async def cancel(self, job_id: str) -> bool:
        return self._runner.cancel(job_id)

    async def info(self) -> dict[str, Any]:
        return {
            "owner": self._runner.owner,
            "active": self._runner.active,
            "renewals": self._runner.renewals,
            "pid": os.getpid(),
            "node": ray.get_runtime_context().get_node_id(),
        }
