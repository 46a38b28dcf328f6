"""Alembic's history builds exactly the models' schema, on both databases."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.exc import IntegrityError

from ember.errors import MigrationRequired
from ember.storage import Database, Migrator
from ember.storage.tables import SEARCH_OBJECT_PREFIX, Base

pytestmark = pytest.mark.slow

DESIGN_TABLES = {
    "jobs",
    "job_events",
    "collections",
    "documents",
    "document_versions",
    "chunks",
    "embeddings",
    "indexes",
    "models",
    "agents",
    "agent_runs",
    "job_artifacts",
    "vms",
    "api_tokens",
    "audit_log",
    "usage",
    "workspaces",
}


def test_upgrade_creates_every_table_and_is_idempotent(database_url: str) -> None:
    database = Database(database_url)
    migrator = Migrator(database)
    assert migrator.current() is None
    with pytest.raises(MigrationRequired, match="ember db upgrade"):
        migrator.require_current()
    assert migrator.upgrade() == migrator.head()
    assert migrator.upgrade() == migrator.head()
    migrator.require_current()
    tables = set(inspect(database.engine).get_table_names())
    search = {name for name in tables if name.startswith(SEARCH_OBJECT_PREFIX)}
    assert tables - search == DESIGN_TABLES | {"alembic_version"}
    assert bool(search) == (database.dialect == "sqlite")
    database.dispose()


def test_workspaces_move_existing_rows_to_default_and_lose_nothing(database_url: str) -> None:
    database = Database(database_url)
    migrator = Migrator(database)
    migrator.upgrade("0002")
    with database.engine.begin() as connection:
        now = "2026-12-01 00:00:00+00:00"
        connection.exec_driver_sql(
            "INSERT INTO collections (id, name, description, metadata, created_at) "
            f"VALUES ('c1', 'docs', '', '{{}}', '{now}')"
        )
        connection.exec_driver_sql(
            "INSERT INTO documents (id, collection_id, source, current_version, metadata, "
            f"created_at, updated_at) VALUES ('d1', 'c1', 'a.txt', 1, '{{}}', '{now}', '{now}')"
        )
        connection.exec_driver_sql(
            "INSERT INTO jobs (id, kind, state, principal, input, attempts, max_attempts, "
            f"created_at, updated_at) VALUES ('j1', 'echo', 'queued', 'alice', '{{}}', 0, 3, "
            f"'{now}', '{now}')"
        )
    assert migrator.upgrade() == migrator.head()
    with database.engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT name FROM workspaces").scalars().all() == [
            "default"
        ]
        for table in ("collections", "jobs"):
            found = connection.exec_driver_sql(f"SELECT workspace FROM {table}").scalars().all()
            assert found == ["default"], table
        assert connection.exec_driver_sql("SELECT id FROM documents").scalars().all() == ["d1"]
    with database.engine.begin() as connection:
        connection.exec_driver_sql(
            "INSERT INTO collections (id, workspace, name, description, metadata, created_at) "
            "VALUES ('c2', 'team-b', 'docs', '', '{}', '2026-12-02 00:00:00+00:00')"
        )
    with pytest.raises(IntegrityError), database.engine.begin() as connection:
        connection.exec_driver_sql(
            "INSERT INTO collections (id, workspace, name, description, metadata, created_at) "
            "VALUES ('c3', 'team-b', 'docs', '', '{}', '2026-12-02 00:00:00+00:00')"
        )
    database.dispose()


def test_migrations_match_the_models(database: Database) -> None:
    with database.engine.connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={
                "compare_type": True,
                "include_name": lambda name, *_: not (name or "").startswith(SEARCH_OBJECT_PREFIX),
            },
        )
        diff = compare_metadata(context, Base.metadata)
    assert diff == []


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'x.db'}")
    with database.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    database.dispose()
