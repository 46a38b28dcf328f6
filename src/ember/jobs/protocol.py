"""The job layer's ports: where jobs and their events are kept, how events are published, the
workers of a kind as the dispatcher sees them, the live job system as the API sees it, and
the bulk pipelines a job may hand its work to.

Where a port has a local and a Ray implementation (:class:`JobBus`, :class:`WorkerPool`),
both pass the contract suite of the same name in :mod:`ember.testing`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ember.jobs.records import EventRecord, JobRecord, NewJob, Telemetry
from ember.jobs.states import JobState

if TYPE_CHECKING:
    from ember.auth.scopes import Scope
    from ember.memory.ingest import IngestProgress, IngestReport
    from ember.memory.reindex import ReindexProgress, ReindexReport
    from ember.memory.service import MemoryService
    from ember.storage.audit import AuditDraft

__all__ = [
    "Authority",
    "BulkRunner",
    "EventStore",
    "JobBus",
    "JobRepository",
    "Publish",
    "PublishMany",
    "WorkerPool",
]


class Authority(Protocol):
    """Who may run what: checked before each attempt of a job (see
    :class:`~ember.jobs.authority.SubmitterCheck`)."""

    def check(self, job: JobRecord, scopes: frozenset[Scope]) -> None:
        """:raises EmberError: the job may not run now (it fails with the error's code)."""
        ...


class JobRepository(Protocol):
    """Durable jobs. Every state change is one guarded update (see :mod:`ember.jobs.states`)."""

    def create(self, job: NewJob, audit: AuditDraft | None = None) -> tuple[JobRecord, bool]:
        """Store a new ``queued`` job and its first event (``state: queued``, sequence 1) in
        one transaction; returns it and ``True``.

        With an ``idempotency_key`` the principal already used for the same kind and input,
        returns that job and ``False`` instead. ``audit``, when given, is completed (the job as
        its resource; its kind and whether it was created as detail) and written with outcome
        ``ok`` in the same transaction: the job is never stored without it.

        :raises IdempotencyConflict: the key was used with another kind or input.
        """
        ...

    def by_key(self, principal: str, idempotency_key: str) -> JobRecord | None:
        """The principal's job created with this idempotency key, if any."""
        ...

    def get(
        self, job_id: str, principal: str | None = None, *, workspace: str | None = None
    ) -> JobRecord:
        """:raises JobNotFound: no such job, or (with ``principal``) not that principal's, or
        (with ``workspace``) not in that workspace."""
        ...

    def page(
        self,
        *,
        principal: str | None = None,
        workspace: str | None = None,
        states: Sequence[JobState] = (),
        kinds: Sequence[str] = (),
        limit: int = 50,
        cursor: str | None = None,
        agent: str | None = None,
    ) -> tuple[list[JobRecord], str | None]:
        """Newest first; returns a page and the cursor of the next page (``None`` at the end).
        ``agent`` keeps only ``agent`` jobs that run that profile.

        :raises InvalidCursor: ``cursor`` was not made by this method.
        """
        ...

    def claim(self, kind: str, owner: str, ttl_s: float, limit: int = 1) -> list[JobRecord]:
        """Lease up to ``limit`` of the oldest queued jobs of ``kind`` to ``owner`` for
        ``ttl_s`` seconds: each becomes ``running`` with ``attempts + 1``."""
        ...

    def renew(
        self, job_id: str, owner: str, ttl_s: float, *, attempt: int | None = None
    ) -> JobState | None:
        """Extend ``owner``'s lease (of ``attempt``, when given: a worker leased the same job
        again holds the new attempt's lease, never the old one's); returns the job's state
        (``cancelling`` tells the worker to stop), or ``None`` when that lease is gone."""
        ...

    def finish(
        self,
        job_id: str,
        owner: str,
        state: JobState,
        *,
        result: dict[str, Any] | None = None,
        error_code: str | None = None,
        error_detail: str | None = None,
        attempt: int | None = None,
    ) -> JobRecord:
        """Move ``owner``'s running (or cancelling) job to a final state and drop the lease
        (of ``attempt``, when given). ``cancelled`` needs ``cancelling``.

        :raises InvalidTransition: ``owner`` (with ``attempt``) does not hold the lease, or
            no such edge.
        """
        ...

    def expire(self, job_id: str, owner: str) -> bool:
        """End ``owner``'s lease now (its worker is known dead), so the next :meth:`reap`
        deals with the job; returns whether ``owner`` held it."""
        ...

    def request_cancel(
        self, job_id: str, principal: str | None = None, *, workspace: str | None = None
    ) -> JobRecord:
        """Queued → cancelled; running → cancelling; cancelling stays. Returns the job.

        :raises JobNotFound: as for :meth:`get`.
        :raises JobFinished: the job is already final.
        """
        ...

    def fail_queued(self, job_id: str, error_code: str, error_detail: str) -> JobRecord:
        """Fail a queued job that cannot run (for instance: no handler for its kind).

        :raises InvalidTransition: it is no longer queued.
        """
        ...

    def reap(self, now: datetime | None = None) -> list[tuple[JobRecord, JobState]]:
        """Deal with every expired lease: cancelling → cancelled; running → queued while
        attempts remain, else failed with ``worker_lost``. Returns each job as it is now and
        the state it had."""
        ...

    def counts(self) -> dict[tuple[str, JobState], int]:
        """How many jobs each (kind, state) has."""
        ...

    def active_count(self, principal: str) -> int:
        """How many of the principal's jobs are queued, running or cancelling."""
        ...


class EventStore(Protocol):
    """The durable log of job events."""

    def append(self, events: Sequence[EventRecord]) -> None:
        """Append in one transaction. ``(job_id, seq)`` is unique."""
        ...

    def after(self, job_id: str, seq: int, limit: int = 1000) -> list[EventRecord]:
        """Up to ``limit`` events of the job with a sequence number above ``seq``, in order."""
        ...

    def last_seq(self, job_id: str) -> int:
        """The highest stored sequence number of the job (0 when none)."""
        ...


Publish = Callable[[str, str, dict[str, Any]], Awaitable[int]]
"""Publishes an event (job id, type, data) and returns its sequence number."""

PublishMany = Callable[[str, Sequence[tuple[str, dict[str, Any]]]], Awaitable[list[int]]]
"""Publishes several events of one job in one call and returns their sequence numbers."""


class WorkerPool(Protocol):
    """The workers of one job kind, as the dispatcher sees them."""

    def free_slots(self) -> list[str]:
        """One worker id per free slot (a worker with two free slots appears twice). Only
        workers that can take a job now are listed: a Ray worker still starting is not."""
        ...

    async def start(self, worker_id: str, job: JobRecord) -> None:
        """Hand ``job`` (leased to ``worker_id``) to that worker and return at once: the job
        runs in the background. Its slot leaves :meth:`free_slots` before this returns and
        comes back when the job has ended, whatever the outcome."""
        ...

    async def cancel(self, worker_id: str, job_id: str) -> None:
        """Ask the worker to cancel the job's work now (best effort: a job the worker does not
        run yet, a job or a worker it does not know, is ignored). The worker records the job
        ``cancelled`` only when its row is ``cancelling``
        (:meth:`JobRepository.request_cancel`)."""
        ...

    async def renewals(self) -> int:
        """Lease renewals the pool's workers made, replaced workers included (it never goes
        down)."""
        ...


class JobBus(Protocol):
    """The live side of the job system, as the API sees it."""

    async def publish(self, job_id: str, type_: str, data: dict[str, Any]) -> int:
        """Publish an event of the job; returns its sequence number. A job's events are
        numbered from 1 without gaps, whoever publishes them (concurrent publishers get
        distinct numbers), except that a hub taking over a job from one that died skips the
        numbers the other may have handed out; each job is numbered on its own.

        :raises EventsLost: the event hub is gone (the event was not published).
        """
        ...

    async def publish_many(
        self, job_id: str, events: Sequence[tuple[str, dict[str, Any]]]
    ) -> list[int]:
        """Publish several events of one job in order; returns their sequence numbers, which
        are consecutive (``[]`` for no events).

        :raises EventsLost: the event hub is gone (none was published).
        """
        ...

    async def wait(self, job_id: str, after: int, timeout_s: float) -> list[EventRecord] | None:
        """See :meth:`ember.jobs.hub.EventHub.wait`. A job's numbers may skip ahead after the
        hub was restarted (numbers it may have handed out before are never used again).

        :raises ServiceUnavailable: the hub cannot be reached now (it is restarting).
        """
        ...

    async def submitted(self, job_id: str) -> None:
        """A job was queued: let the dispatcher look now rather than at its next poll. Best
        effort: ``RayJobBus`` returns without waiting for the dispatcher; an unknown job id
        is ignored."""
        ...

    async def cancel(self, job_id: str) -> None:
        """A running job is now ``cancelling``: tell its worker at once (best effort; the
        worker also learns it at its next lease renewal). A job that is not ``cancelling``
        is left alone.

        :raises JobNotFound: no such job.
        """
        ...

    async def telemetry(self) -> Telemetry:
        """Durations and lease renewals, for ``/metrics``."""
        ...


class BulkRunner(Protocol):
    """Runs the Ray Data pipelines over a memory plane (see :mod:`ember.pipelines`)."""

    def ingest(
        self,
        memory: MemoryService,
        collection: str,
        root: Path,
        progress: Callable[[IngestProgress], None],
    ) -> IngestReport:
        """Bulk-ingest every document under ``root``; see ``BulkIngest.run``."""
        ...

    def reindex(
        self,
        memory: MemoryService,
        collection: str,
        progress: Callable[[ReindexProgress], None],
    ) -> ReindexReport:
        """Bulk-reindex ``collection``; see ``BulkReindex.run``."""
        ...
