"""Plain records the job layer hands around (no ORM objects cross its edge)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ember.jobs.states import TERMINAL, JobState

__all__ = ["EventRecord", "JobRecord", "NewJob"]


@dataclass(frozen=True)
class NewJob:
    """What ``POST /jobs`` accepted, validated."""

    kind: str
    input: dict[str, Any]
    principal: str
    request_id: str | None = None
    idempotency_key: str | None = None
    max_attempts: int = 3


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
