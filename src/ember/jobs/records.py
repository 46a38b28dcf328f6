"""Plain records the job layer hands around (no ORM objects cross its edge)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ember.jobs.states import TERMINAL, JobState

__all__ = [
    "DURATION_BUCKETS",
    "DurationHistogram",
    "EventRecord",
    "HubStats",
    "JobRecord",
    "NewJob",
    "Telemetry",
]


@dataclass(frozen=True)
class NewJob:
    """What ``POST /jobs`` accepted, validated."""

    kind: str
    input: dict[str, Any]
    principal: str
    request_id: str | None = None
    idempotency_key: str | None = None
    max_attempts: int = 3
    workspace: str = "default"
    token_id: str | None = None
    """The token that submitted it (``None``: the dev bypass or the CLI); its worker checks
    the token again before the job runs."""
    trace_parent: str | None = None
    """The W3C ``traceparent`` of the span that submitted it (``None``: not traced); its
    worker's spans continue that trace."""


@dataclass(frozen=True)
class JobRecord:
    """One job as stored."""

    id: str
    kind: str
    state: JobState
    principal: str
    request_id: str | None
    idempotency_key: str | None
    input: dict[str, Any]
    result: dict[str, Any] | None
    error_code: str | None
    error_detail: str | None
    attempts: int
    max_attempts: int
    lease_owner: str | None
    lease_expires_at: datetime | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    workspace: str = "default"
    token_id: str | None = None
    trace_parent: str | None = None

    @property
    def trace_id(self) -> str | None:
        """The id of the trace the job belongs to (``None``: not traced)."""
        return self.trace_parent.split("-")[1] if self.trace_parent else None

    @property
    def finished(self) -> bool:
        """Whether the job is in a terminal state."""
        return self.state in TERMINAL


@dataclass(frozen=True)
class EventRecord:
    """One numbered event of a job. ``seq`` starts at 1 and has no gaps."""

    job_id: str
    seq: int
    type: str
    data: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None


DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 3600.0)
"""Upper bounds (seconds) of the job-duration histogram."""


@dataclass
class DurationHistogram:
    """Cumulative counts of job attempt durations, Prometheus-style (``le`` buckets)."""

    buckets: list[int] = field(default_factory=lambda: [0] * (len(DURATION_BUCKETS) + 1))
    total: float = 0.0
    count: int = 0

    def observe(self, seconds: float) -> None:
        for i, bound in enumerate(DURATION_BUCKETS):
            if seconds <= bound:
                self.buckets[i] += 1
        self.buckets[-1] += 1
        self.total += seconds
        self.count += 1


@dataclass(frozen=True)
class HubStats:
    """What the hub holds in memory right now."""

    jobs: int
    buffered: int
    pending: int


@dataclass(frozen=True)
class Telemetry:
    """What the running job system reports for the metrics endpoint."""

    durations: dict[tuple[str, str], DurationHistogram]
    """Attempt durations by (kind, outcome)."""
    renewals: int
    """Lease renewals made by all workers since the job system started."""
