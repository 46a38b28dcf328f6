"""What the API needs, built once per replica and handed to the app factory."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool

from ember.config import EmberConfig
from ember.memory.service import MemoryService
from ember.serve_app.readiness import CheckResult, Readiness
from ember.storage import (
    CollectionRepository,
    Database,
    Migrator,
    SqlCollectionRepository,
)

__all__ = ["AppContext", "build_context"]


@dataclass(frozen=True)
class AppContext:
    """The API's dependencies (constructor-injected; tests build their own)."""

    config: EmberConfig
    database: Database
    migrator: Migrator
    collections: CollectionRepository
    memory: MemoryService
    readiness: Readiness


def build_context(config: EmberConfig, memory: MemoryService | None = None) -> AppContext:
    """Wire the default adapters for ``config``; readiness checks the database is migrated.

    ``memory`` defaults to the configured memory plane (it loads its model lazily).
    """
    database = Database.from_config(config)
    migrator = Migrator(database)
    readiness = Readiness()

    async def database_ready() -> CheckResult:
        await run_in_threadpool(database.ping)
        await run_in_threadpool(migrator.require_current)
        return CheckResult(True, f"{database.dialect} at revision {migrator.head()}")

    readiness.add("database", database_ready)
    return AppContext(
        config=config,
        database=database,
        migrator=migrator,
        collections=SqlCollectionRepository(database),
        memory=memory or MemoryService.build(config, database),
        readiness=readiness,
    )
