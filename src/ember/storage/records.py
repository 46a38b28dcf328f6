"""Plain records the repositories return: immutable, picklable, free of sessions."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = [
    "AuditRecord",
    "ChunkRecord",
    "CollectionRecord",
    "DbapiQuery",
    "LiveVersion",
    "NewChunk",
    "NewVersion",
    "TokenRecord",
    "UsageEntry",
    "UsageTotals",
    "WrittenVersion",
]


@dataclass(frozen=True, slots=True)
class CollectionRecord:
    """A collection as stored."""

    id: str
    name: str
    description: str
    embedding_model: str | None
    metadata: dict[str, Any]
    created_at: datetime
    workspace: str = "default"


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
    workspace: str = "default"


@dataclass(frozen=True, slots=True)
class DbapiQuery:
    """A query for a reader in another process (Ray Data's ``read_sql``): SQL text and its
    parameters in the DB-API style of the database it was compiled for. Storage builds it;
    callers hand both fields to the reader unchanged, with that database's
    :meth:`~ember.storage.database.Database.dbapi_connector`."""

    sql: str
    params: Any


@dataclass(frozen=True, slots=True)
class NewChunk:
    """A chunk about to be written: its text, span in the document, tokens and vector row."""

    text: str
    char_start: int
    char_end: int
    token_count: int


@dataclass(frozen=True, slots=True)
class NewVersion:
    """A document version about to be written (see ``VersionStore.write_version``)."""

    source: str
    title: str | None
    media_type: str
    content_hash: str
    size_bytes: int
    metadata: dict[str, Any]
    chunks: list[NewChunk]


@dataclass(frozen=True, slots=True)
class WrittenVersion:
    """What ``write_version`` did: the new chunk ids and the ids it retired."""

    document_id: str
    version: int
    chunk_ids: list[int]
    retired_chunk_ids: list[int]


@dataclass(frozen=True, slots=True)
class LiveVersion:
    """The current version of a source in a collection."""

    document_id: str
    version: int
    content_hash: str


@dataclass(frozen=True, slots=True)
class ChunkRecord:
    """A stored chunk with its attribution."""

    id: int
    collection_id: str
    document_id: str
    source: str
    version: int
    ordinal: int
    title: str | None
    text: str
    char_start: int
    char_end: int
    token_count: int
    metadata: dict[str, Any]


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """An API token as stored, without its secret (only its hash is kept, and never returned)."""

    id: str
    name: str
    principal: str
    scopes: tuple[str, ...]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    workspace: str = "default"


@dataclass(frozen=True, slots=True)
class UsageEntry:
    """Tokens and cost of one provider call. ``id`` is set by the log; ``ts`` too when unset."""

    principal: str
    provider: str
    model: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    request_id: str | None = None
    job_id: str | None = None
    id: int | None = None
    ts: datetime | None = None
    workspace: str = "default"

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class UsageGroup:
    """The usage of one principal of one workspace at one provider."""

    workspace: str
    principal: str
    provider: str
    requests: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float


@dataclass(frozen=True, slots=True)
class UsageTotals:
    """Sums over usage entries."""

    calls: int = 0
    tokens: int = 0
    cost_usd: float = 0.0
