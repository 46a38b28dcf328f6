"""Plain records the repositories return: immutable, picklable, free of sessions."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["AuditRecord", "CollectionRecord"]


@dataclass(frozen=True, slots=True)
class CollectionRecord:
    """A collection as stored."""

    id: str
    name: str
    description: str
    embedding_model: str | None
    metadata: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One audit entry. ``id`` and ``ts`` are set by the log when appended."""

    actor: str
    action: str
    resource: str
    outcome: str
    request_id: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    id: int | None = None
    ts: datetime | None = None
