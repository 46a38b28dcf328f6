"""The job system as the API uses it: submit, look up, list, cancel, follow.

Submitting validates the input against the kind's model before anything is stored, checks the
principal's quota of unfinished jobs, stores the job (idempotently when a key is given),
announces it (a ``state: queued`` event) and nudges the dispatcher. Submits and cancels are
written to the audit log with their outcome.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

from ember.errors import QuotaExceeded
from ember.jobs.kinds import KindRegistry
from ember.jobs.protocol import EventStore, JobBus, JobRepository
from ember.jobs.records import EventRecord, JobRecord, NewJob
from ember.jobs.states import JobState
from ember.jobs.stream import follow
from ember.storage.audit import audited
from ember.storage.protocol import AuditLog

__all__ = ["JobService"]


class JobService:
    """Submits and follows jobs; see the module docstring."""

    def __init__(
        self,
        jobs: JobRepository,
        events: EventStore,
        kinds: KindRegistry,
        bus: JobBus,
        audit: AuditLog,
        *,
        max_active_per_principal: int = 100,
        max_attempts: int = 3,
        heartbeat_s: float = 15.0,
    ) -> None:
        self.jobs = jobs
        self.events = events
        self.kinds = kinds
        self.bus = bus
        self._audit = audit
        self._quota = max_active_per_principal
        self._max_attempts = max_attempts
        self.heartbeat_s = heartbeat_s

    async def submit(
        self,
        kind: str,
        payload: Any,
        principal: str,
        *,
        request_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> tuple[JobRecord, bool]:
        """Store a job and start it; returns it and whether it is new (``False``: the same
        key and body were submitted before, and this is that job).

        :raises UnknownJobKind: no such kind.
        :raises ValidationFailed: the input does not fit the kind's model.
        :raises QuotaExceeded: the principal has too many unfinished jobs.
        :raises IdempotencyConflict: the key was used with another body.
        """
        resource = f"job-kind:{kind}"
        with audited(
            self._audit, principal, "job.create", resource, request_id=request_id
        ) as draft:
            checked = self.kinds.validate(kind, payload)
            job = NewJob(kind, checked, principal, request_id, idempotency_key, self._max_attempts)
            if idempotency_key is None or not await self._known(job):
                active = await asyncio.to_thread(self.jobs.active_count, principal)
                if active >= self._quota:
                    raise QuotaExceeded(
                        f"{principal} has {active} unfinished jobs; the quota is {self._quota}"
                    )
            record, created = await asyncio.to_thread(self.jobs.create, job)
            draft.resource = f"job:{record.id}"
            draft.detail = {"kind": kind, "created": created}
        if created:
            await self.bus.publish(record.id, "state", {"state": "queued"})
            await self.bus.submitted(record.id)
        return record, created

    async def _known(self, job: NewJob) -> bool:
        assert job.idempotency_key is not None
        found = await asyncio.to_thread(self.jobs.by_key, job.principal, job.idempotency_key)
        return found is not None

    async def get(self, job_id: str, principal: str | None) -> JobRecord:
        """:raises JobNotFound: no such job (or not ``principal``'s; ``None``: any)."""
        return await asyncio.to_thread(self.jobs.get, job_id, principal)

    async def page(
        self,
        principal: str | None,
        *,
        states: Sequence[JobState] = (),
        kinds: Sequence[str] = (),
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[JobRecord], str | None]:
        """A page of jobs, newest first, and the next page's cursor."""
        return await asyncio.to_thread(
            self.jobs.page,
            principal=principal,
            states=states,
            kinds=kinds,
            limit=limit,
            cursor=cursor,
        )

    async def cancel(
        self, job_id: str, principal: str | None, actor: str, request_id: str | None = None
    ) -> JobRecord:
        """Request the job's cancellation; see :meth:`JobRepository.request_cancel`."""
        with audited(self._audit, actor, "job.cancel", f"job:{job_id}", request_id=request_id):
            record = await asyncio.to_thread(self.jobs.request_cancel, job_id, principal)
        if record.state is JobState.CANCELLED:
            await self.bus.publish(record.id, "state", {"state": "cancelled"})
        elif record.state is JobState.CANCELLING:
            await self.bus.publish(record.id, "state", {"state": "cancelling"})
            await self.bus.cancel(record.id)
        return record

    def follow(self, job_id: str, after: int) -> AsyncIterator[EventRecord | None]:
        """The job's events after ``after``, then live; see :func:`ember.jobs.stream.follow`."""
        return follow(
            job_id,
            after,
            events=self.events,
            jobs=self.jobs,
            bus=self.bus,
            heartbeat_s=self.heartbeat_s,
        )
