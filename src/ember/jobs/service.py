"""The job system as the API uses it: submit, look up, list, cancel, follow.

Submitting validates the input against the kind's model before anything is stored, checks the
principal's quota of unfinished jobs, then stores the job, its first event (``state: queued``)
and its audit entry in one transaction (idempotently when a key is given), and nudges the
dispatcher; a nudge that fails is logged, since the dispatcher also polls. Refused submits and
every cancel are written to the audit log with their outcome. Database work runs off the event
loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

from ember.auth.principal import Principal
from ember.errors import QuotaExceeded
from ember.jobs.authority import require_scopes
from ember.jobs.kinds import KindRegistry
from ember.jobs.protocol import EventStore, JobBus, JobRepository
from ember.jobs.records import EventRecord, JobRecord, NewJob
from ember.jobs.states import JobState
from ember.jobs.stream import follow
from ember.observability.tracing import carrier, trace_id
from ember.storage.audit import AuditDraft, audited, record_failure
from ember.storage.protocol import AuditLog

__all__ = ["JobService"]

log = logging.getLogger(__name__)


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
        caller: Principal,
        *,
        request_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> tuple[JobRecord, bool]:
        """Store a job and start it; returns it and whether it is new (``False``: the same
        key and body were submitted before, and this is that job).

        The job belongs to the caller's workspace and remembers the caller's token, so its
        worker can check the kind's scopes again before each attempt.

        :raises UnknownJobKind: no such kind.
        :raises Forbidden: the caller lacks a scope the kind needs.
        :raises ValidationFailed: the input does not fit the kind's model.
        :raises QuotaExceeded: the principal has too many unfinished jobs.
        :raises IdempotencyConflict: the key was used with another body.
        """
        principal = caller.name
        draft = AuditDraft(
            principal, "job.create", f"job-kind:{kind}", request_id, workspace=caller.workspace
        )

        parent = carrier().get("traceparent") if trace_id() is not None else None

        def store() -> tuple[JobRecord, bool]:
            try:
                require_scopes(caller, kind, self.kinds.get(kind).scopes)
                checked = self.kinds.validate(kind, payload)
                job = NewJob(
                    kind,
                    checked,
                    principal,
                    request_id,
                    idempotency_key,
                    self._max_attempts,
                    workspace=caller.workspace,
                    token_id=caller.token_id,
                    trace_parent=parent,
                )
                known = idempotency_key is not None and self._known(job)
                if not known:
                    active = self.jobs.active_count(principal)
                    if active >= self._quota:
                        raise QuotaExceeded(
                            f"{principal} has {active} unfinished jobs; the quota is {self._quota}"
                        )
                return self.jobs.create(job, draft)
            except Exception as exc:
                record_failure(self._audit, draft, exc)
                raise

        record, created = await asyncio.to_thread(store)
        if created:
            try:
                await self.bus.submitted(record.id)
            except Exception as exc:
                log.warning(
                    "could not nudge the dispatcher (it finds the job at its next poll): %s",
                    exc,
                    extra={"job_id": record.id},
                )
        return record, created

    def _known(self, job: NewJob) -> bool:
        assert job.idempotency_key is not None
        return self.jobs.by_key(job.principal, job.idempotency_key) is not None

    async def get(self, job_id: str, caller: Principal) -> JobRecord:
        """:raises JobNotFound: no such job, or one ``caller`` may not see (another's, for
        a caller without ``admin``; another workspace's, without ``cluster:admin``)."""
        return await asyncio.to_thread(
            self.jobs.get,
            job_id,
            caller.visible_owner,
            workspace=caller.visible_workspace,
        )

    async def page(
        self,
        caller: Principal,
        *,
        states: Sequence[JobState] = (),
        kinds: Sequence[str] = (),
        limit: int = 50,
        cursor: str | None = None,
        agent: str | None = None,
    ) -> tuple[list[JobRecord], str | None]:
        """A page of the jobs ``caller`` may see, newest first, and the next page's cursor
        (``agent``: only ``agent`` jobs of that profile)."""
        return await asyncio.to_thread(
            self.jobs.page,
            principal=caller.visible_owner,
            workspace=caller.visible_workspace,
            states=states,
            kinds=kinds,
            limit=limit,
            cursor=cursor,
            agent=agent,
        )

    async def cancel(
        self, job_id: str, caller: Principal, request_id: str | None = None
    ) -> JobRecord:
        """Request the job's cancellation; see :meth:`JobRepository.request_cancel`.

        :raises JobNotFound: as for :meth:`get`."""

        def request() -> JobRecord:
            resource = f"job:{job_id}"
            with audited(
                self._audit,
                caller.name,
                "job.cancel",
                resource,
                request_id=request_id,
                workspace=caller.workspace,
            ):
                return self.jobs.request_cancel(
                    job_id, caller.visible_owner, workspace=caller.visible_workspace
                )

        record = await asyncio.to_thread(request)
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
