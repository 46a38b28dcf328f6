"""Whether an attempt of a job still holds its lease, checked inside a write's transaction.

Work an attempt keeps besides the job's row (its files, an agent's transcript) is written only
while the attempt holds the lease: an attempt that lost it, or one started again after the job
ended, must never replace what the attempt that finished the job left.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from ember.jobs.records import JobRecord
from ember.jobs.states import JobState
from ember.storage.tables import Job

__all__ = ["holds_lease"]

_ACTIVE = (JobState.RUNNING.value, JobState.CANCELLING.value)


def holds_lease(session: Session, job: JobRecord) -> bool:
    """Whether ``job`` (as its attempt was leased: owner and attempt number) is still running
    or cancelling under that lease; the row stays locked until ``session`` ends, so the
    caller's write lands before any other attempt can take the lease."""
    holder = session.execute(
        select(Job.id)
        .where(
            Job.id == job.id,
            Job.lease_owner == job.lease_owner,
            Job.attempts == job.attempts,
            Job.state.in_(_ACTIVE),
        )
        .with_for_update()
    ).first()
    return holder is not None
