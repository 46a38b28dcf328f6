"""Job states and the edges between them: the only transitions the repository performs.

    queued ──lease──▶ running ──▶ succeeded | failed
      │                  │ ▲
      │ cancel           │ └── requeue (lease expired, attempts left)
      ▼                  ▼
    cancelled ◀──── cancelling ──▶ succeeded | failed (the work ended before the cancel
                                   reached it)

A queued job may also fail without running (its kind vanished, its attempts ran out).
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["EDGES", "TERMINAL", "JobState", "allowed"]


class JobState(StrEnum):
    """Where a job is in its life."""

    QUEUED = "queued"
    """Accepted and durable; waiting for a worker."""
    RUNNING = "running"
    """Leased to a worker, which renews the lease while it works."""
    CANCELLING = "cancelling"
    """Cancel requested; the worker has not yet stopped."""
    SUCCEEDED = "succeeded"
    """Finished with a result."""
    FAILED = "failed"
    """Finished with an error code."""
    CANCELLED = "cancelled"
    """Stopped on request."""


TERMINAL = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})

EDGES: frozenset[tuple[JobState, JobState]] = frozenset(
    {
        (JobState.QUEUED, JobState.RUNNING),
        (JobState.QUEUED, JobState.CANCELLED),
        (JobState.QUEUED, JobState.FAILED),
        (JobState.RUNNING, JobState.SUCCEEDED),
        (JobState.RUNNING, JobState.FAILED),
        (JobState.RUNNING, JobState.CANCELLING),
        (JobState.RUNNING, JobState.QUEUED),
        (JobState.CANCELLING, JobState.CANCELLED),
        (JobState.CANCELLING, JobState.SUCCEEDED),
        (JobState.CANCELLING, JobState.FAILED),
    }
)


def allowed(current: JobState, target: JobState) -> bool:
    """Whether ``current → target`` is an edge."""
    return (current, target) in EDGES
