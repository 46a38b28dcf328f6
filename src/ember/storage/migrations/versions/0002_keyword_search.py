"""Keyword search: SQLite FTS5 (bm25, porter stemming) and a Postgres full-text GIN index.

SQLite keeps ``chunks_fts`` (title, text) in step with ``chunks`` through triggers, so the
keyword rows are written in the chunk's own transaction; retired and deleted chunks leave it.
Postgres indexes the weighted ``tsvector`` expression of ``chunks`` itself (title weight A,
text weight B); queries use the same expression.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SQLITE_UP = [
    "CREATE VIRTUAL TABLE chunks_fts USING fts5(title, text, tokenize='porter unicode61')",
    "CREATE TRIGGER chunks_fts_insert AFTER INSERT ON chunks WHEN new.retired = 0 BEGIN "
    "INSERT INTO chunks_fts(rowid, title, text) VALUES (new.id, coalesce(new.title, ''), "
    "new.text); END",
    "CREATE TRIGGER chunks_fts_retire AFTER UPDATE OF retired ON chunks "
    "WHEN new.retired = 1 AND old.retired = 0 BEGIN "
    "DELETE FROM chunks_fts WHERE rowid = old.id; END",
    "CREATE TRIGGER chunks_fts_delete AFTER DELETE ON chunks BEGIN "
    "DELETE FROM chunks_fts WHERE rowid = old.id; END",
]
SQLITE_DOWN = [
    "DROP TRIGGER chunks_fts_delete",
    "DROP TRIGGER chunks_fts_retire",
    "DROP TRIGGER chunks_fts_insert",
    "DROP TABLE chunks_fts",
]
POSTGRES_UP = [
    "CREATE INDEX chunks_fts_gin ON chunks USING gin (("
    "setweight(to_tsvector('english', coalesce(title, '')), 'A') || "
    "setweight(to_tsvector('english', text), 'B')))"
]
POSTGRES_DOWN = ["DROP INDEX chunks_fts_gin"]


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    for statement in SQLITE_UP if sqlite else POSTGRES_UP:
        op.execute(statement)


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    for statement in SQLITE_DOWN if sqlite else POSTGRES_DOWN:
        op.execute(statement)
