"""Suite-wide fixtures: databases (SQLite and a real Postgres server), ports, a fake clock, env."""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

import pytest

from ember.storage import Database, Migrator
from tests.support.clock import FakeClock
from tests.support.postgres import PostgresServer, free_port

REPO = Path(__file__).resolve().parent.parent

pytest_plugins = ["tests.support.models", "tests.support.vms"]


@pytest.fixture(autouse=True, scope="module")
def _garbage_collected_per_module() -> Iterator[None]:
    """Collect what a module left in reference cycles as the module ends, so that an unclosed
    socket or file it leaked fails that module's last test, not whichever later test the
    collector happened to interrupt."""
    yield
    gc.collect()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A real PostgreSQL server for the whole session."""
    server = PostgresServer().start()
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database on each backend: SQLite in a temp dir, then a new Postgres database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ember.db'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.create_database()


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    """A migrated database on each backend."""
    db = Database(database_url)
    Migrator(db).upgrade()
    try:
        yield db
    finally:
        db.dispose()


@pytest.fixture
def port() -> int:
    """A free TCP port on 127.0.0.1 (never 8000)."""
    return free_port()


@pytest.fixture
def clock() -> FakeClock:
    """A fake clock at 1000.0 monotonic seconds (wall time 2026-12-01 12:00 UTC), moved by hand."""
    return FakeClock()
