"""Storage: SQLAlchemy tables, Alembic migrations, repositories and backups.

SQLite (WAL) under ``EMBER_HOME`` is the default; Postgres through ``EMBER_DATABASE_URL``.
Both run the same migrations and the same repository test suite.
"""

from ember.storage.audit import AuditDraft, SqlAuditLog, audited
from ember.storage.backup import BackupTool
from ember.storage.chunk_store import SqlChunkStore
from ember.storage.chunks import SqlChunkReader, chunk_metadata
from ember.storage.clock import utcnow
from ember.storage.collections import SqlCollectionRepository
from ember.storage.database import Database, is_transient
from ember.storage.embeddings import SqlEmbeddingStore
from ember.storage.keyword_search import SqlKeywordSearch
from ember.storage.migrator import Migrator
from ember.storage.protocol import (
    AuditLog,
    ChunkReader,
    ChunkStore,
    CollectionRepository,
    EmbeddingStore,
    KeywordSearch,
    UsageLog,
    VersionStore,
)
from ember.storage.records import (
    AuditRecord,
    ChunkRecord,
    CollectionRecord,
    DbapiQuery,
    LiveVersion,
    NewChunk,
    NewVersion,
    TokenRecord,
    UsageEntry,
    UsageGroup,
    UsageTotals,
    WrittenVersion,
)
from ember.storage.usage import SqlUsageLog
from ember.storage.versions import SqlVersionStore

__all__ = [
    "AuditDraft",
    "AuditLog",
    "AuditRecord",
    "BackupTool",
    "ChunkReader",
    "ChunkRecord",
    "ChunkStore",
    "CollectionRecord",
    "CollectionRepository",
    "Database",
    "DbapiQuery",
    "EmbeddingStore",
    "KeywordSearch",
    "LiveVersion",
    "Migrator",
    "NewChunk",
    "NewVersion",
    "SqlAuditLog",
    "SqlChunkReader",
    "SqlChunkStore",
    "SqlCollectionRepository",
    "SqlEmbeddingStore",
    "SqlKeywordSearch",
    "SqlUsageLog",
    "SqlVersionStore",
    "TokenRecord",
    "UsageEntry",
    "UsageGroup",
    "UsageLog",
    "UsageTotals",
    "VersionStore",
    "WrittenVersion",
    "audited",
    "chunk_metadata",
    "is_transient",
    "utcnow",
]
