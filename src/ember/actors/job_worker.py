"""The JobWorker actor: runs leased jobs of one kind with a :class:`ember.jobs.runner.JobRunner`.

An async actor, so a cancel arrives while a job runs and raises ``CancelledError`` inside the
handler. Events go to the EventHub actor; the lease is renewed in the job's row.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import ray
from ray.exceptions import RayActorError

from ember.actors.memory_plane import cluster_memory
from ember.actors.model_access import RayModelAccess
from ember.config import EmberConfig
from ember.jobs.records import JobRecord
from ember.jobs.repository import SqlJobRepository
from ember.jobs.runner import EventsLost, JobRunner
from ember.jobs.wiring import build_kinds
from ember.observability import configure_logging
from ember.pipelines.runner import ClusterPipelines
from ember.storage.database import Database

__all__ = ["JobWorkerActor"]


class JobWorkerActor:
    """Runs jobs for the lease owner ``owner``."""

    def __init__(self, config: EmberConfig, owner: str, hub: Any) -> None:
        configure_logging("ember-worker", config.logging.level, config.logging.format)
        self._database = Database.from_config(config)
        self._hub = hub

        async def publish(job_id: str, type_: str, data: dict[str, Any]) -> int:
            try:
                seq: int = await self._hub.publish.remote(job_id, type_, data)
            except RayActorError as exc:
                raise EventsLost(f"the event hub is gone: {exc}") from exc
            return seq

        async def publish_many(
            job_id: str, events: Sequence[tuple[str, dict[str, Any]]]
        ) -> list[int]:
            try:
                seqs: list[int] = await self._hub.publish_many.remote(job_id, list(events))
            except RayActorError as exc:
                raise EventsLost(f"the event hub is gone: {exc}") from exc
            return seqs

        self._runner = JobRunner(
            SqlJobRepository(self._database),
            build_kinds(
                config,
                self._database,
                memory_builder=cluster_memory,
                models=lambda: RayModelAccess(refresh_s=config.models.route_refresh_s),
                bulk=ClusterPipelines(config, self._database),
            ),
            publish,
            owner,
            lease_ttl_s=config.jobs.lease_ttl_s,
            renew_interval_s=config.jobs.renew_interval_s,
            publish_many=publish_many,
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
