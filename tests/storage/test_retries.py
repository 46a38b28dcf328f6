"""Transient connection errors are retried with backoff; lasting ones become a clear error."""

from __future__ import annotations

import pytest

from ember.config import DatabaseConfig
from ember.errors import DatabaseUnavailable
from ember.storage import Database, Migrator, SqlCollectionRepository
from tests.support.postgres import PostgresServer, free_port

pytestmark = pytest.mark.slow


def test_work_survives_a_postgres_restart() -> None:
    server = PostgresServer().start()
    try:
        url = server.create_database()
        policy = DatabaseConfig(retry_attempts=30, retry_max_wait_s=0.5, connect_timeout_s=2)
        database = Database(url, policy)
        Migrator(database).upgrade()
        collections = SqlCollectionRepository(database)
        collections.create("before")
        server.stop("fast")
        restarter = server.restart_later(1.5)
        collections.create("after")
        restarter.wait(timeout=60)
        assert [c.name for c in collections.list()] == ["after", "before"]
        database.dispose()
    finally:
        server.destroy()


def test_an_unreachable_database_is_reported_after_the_retries() -> None:
    policy = DatabaseConfig(retry_attempts=3, retry_max_wait_s=0.05, connect_timeout_s=1)
    database = Database(f"postgresql+psycopg://ember@127.0.0.1:{free_port()}/none", policy)
    with pytest.raises(DatabaseUnavailable, match="unreachable") as caught:
        database.ping()
    assert caught.value.code == "database_unavailable"
    assert caught.value.status == 503
