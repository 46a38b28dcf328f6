"""The job layer's ports: where jobs and their events are kept."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from ember.jobs.records import EventRecord, JobRecord, NewJob
from ember.jobs.states import JobState

__all__ = ["EventStore", "JobRepository"]


class JobRepository(Protocol):
    """Durable jobs. Every state change is one guarded update (see :mod:`ember.jobs.states`)."""

    def create(self, job: NewJob) -> tuple[JobRecord, bool]:
        """Store a new ``queued`` job; returns it and ``True``.

        With an ``idempotency_key`` the principal already used for the same kind and input,
        returns that job and ``False`` instead.

        :raises IdempotencyConflict: the key was used with another kind or input.
        """
        ...

    def by_key(self, principal: str, idempotency_key: str) -> JobRecord | None:
        """The principal's job created with this idempotency key, if any."""
        ...

    def get(self, job_id: str, principal: str | None = None) -> JobRecord:
        """:raises JobNotFound: no such job, or (with ``principal``) not that principal's."""
        ...

    def page(
        self,
        *,
        principal: str | None = None,
        states: Sequence[JobState] = (),
        kinds: Sequence[str] = (),
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[JobRecord], str | None]:
        """Newest first; returns a page and the cursor of the next page (``None`` at the end).

        :raises BadRequest: ``cursor`` was not made by this method.
        """
        ...

    def claim(self, kind: str, owner: str, ttl_s: float, limit: int = 1) -> list[JobRecord]:
        """Lease up to ``limit`` of the oldest queued jobs of ``kind`` to ``owner`` for
        ``ttl_s`` seconds: each becomes ``running`` with ``attempts + 1``."""
        ...

    def renew(self, job_id: str, owner: str, ttl_s: float) -> JobState | None:
        """Extend ``owner``'s lease; returns the job's state (``cancelling`` tells the worker
        to stop), or ``None`` when ``owner`` no longer holds the lease."""
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
    ) -> JobRecord:
        """Move ``owner``'s running (or cancelling) job to a final state and drop the lease.
        ``cancelled`` needs ``cancelling``.

        :raises InvalidTransition: ``owner`` does not hold the lease, or no such edge.
        """
        ...

    def expire(self, job_id: str, owner: str) -> bool:
        """End ``owner``'s lease now (its worker is known dead), so the next :meth:`reap`
        deals with the job; returns whether ``owner`` held it."""
        ...

    def request_cancel(self, job_id: str, principal: str | None = None) -> JobRecord:
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
