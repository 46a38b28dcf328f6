"""Storage: SQLAlchemy tables, Alembic migrations, repositories and backups.

SQLite (WAL) under ``EMBER_HOME`` is the default; Postgres through ``EMBER_DATABASE_URL``.
Both run the same migrations and the same repository test suite.
"""

from ember.storage.audit import SqlAuditLog
from ember.storage.backup import BackupTool
from ember.storage.collections import SqlCollectionRepository
from ember.storage.database import Database, is_transient
from ember.storage.migrator import Migrator
from ember.storage.protocol import AuditLog, CollectionRepository
from ember.storage.records import AuditRecord, CollectionRecord

__all__ = [
    "AuditLog",
    "AuditRecord",
    "BackupTool",
    "CollectionRecord",
    "CollectionRepository",
    "Database",
    "Migrator",
    "SqlAuditLog",
    "SqlCollectionRepository",
    "is_transient",
]
