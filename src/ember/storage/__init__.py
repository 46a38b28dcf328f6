"""Storage: SQLAlchemy tables, Alembic migrations, repositories and backups.

SQLite (WAL) under ``EMBER_HOME`` is the default; Postgres through ``EMBER_DATABASE_URL``.
Both run the same migrations and the same repository test suite.
"""

from ember.storage.audit import AuditDraft, SqlAuditLog, audited
from ember.storage.backup import BackupTool
from ember.storage.chunks import SqlChunkStore
from ember.storage.collections import SqlCollectionRepository
from ember.storage.database import Database, is_transient
from ember.storage.migrator import Migrator
from ember.storage.protocol import AuditLog, ChunkStore, CollectionRepository, UsageLog
from ember.storage.records import (
    AuditRecord,
    ChunkRecord,
    CollectionRecord,
    LiveVersion,
    NewChunk,
    NewVersion,
    TokenRecord,
    UsageEntry,
    UsageTotals,
    WrittenVersion,
)
from ember.storage.usage import SqlUsageLog

__all__ = [
    "AuditDraft",
    "AuditLog",
    "AuditRecord",
    "BackupTool",
    "ChunkRecord",
    "ChunkStore",
    "CollectionRecord",
    "CollectionRepository",
    "Database",
    "LiveVersion",
    "Migrator",
    "NewChunk",
    "NewVersion",
    "SqlAuditLog",
    "SqlChunkStore",
    "SqlCollectionRepository",
    "SqlUsageLog",
    "TokenRecord",
    "UsageEntry",
    "UsageLog",
    "UsageTotals",
    "WrittenVersion",
    "audited",
    "is_transient",
]
