"""What the API needs, built once per replica and handed to the app factory."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool

from ember.auth import Authenticator, SqlTokenRepository, TokenRepository
from ember.config import EmberConfig
from ember.jobs.bus import JobBus
from ember.jobs.events import SqlEventStore
from ember.jobs.repository import SqlJobRepository
from ember.jobs.service import JobService
from ember.jobs.wiring import build_kinds
from ember.memory.service import MemoryService
from ember.serve_app.readiness import CheckResult, Readiness
from ember.storage import (
    AuditLog,
    CollectionRepository,
    Database,
    Migrator,
    SqlAuditLog,
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
    tokens: TokenRepository
    auth: Authenticator
    audit: AuditLog
    jobs: JobService


def _cluster_bus() -> JobBus:
    from ember.actors.builder import RayJobBus

    return RayJobBus()


def build_context(
    config: EmberConfig, memory: MemoryService | None = None, bus: JobBus | None = None
) -> AppContext:
    """Wire the default adapters for ``config``; readiness checks the database is migrated.

    ``memory`` defaults to the configured memory plane (it loads its model lazily); ``bus``
    to the cluster's job system actors (looked up on the first job call).
    """
    database = Database.from_config(config)
    migrator = Migrator(database)
    readiness = Readiness()

    async def database_ready() -> CheckResult:
        await run_in_threadpool(database.ping)
        await run_in_threadpool(migrator.require_current)
        return CheckResult(True, f"{database.dialect} at revision {migrator.head()}")

    readiness.add("database", database_ready)
    tokens = SqlTokenRepository(database)
    memory = memory or MemoryService.build(config, database)
    audit = SqlAuditLog(database)
    settings = config.jobs
    jobs = JobService(
        SqlJobRepository(database),
        SqlEventStore(database),
        build_kinds(config, database, memory=lambda: memory),
        bus or _cluster_bus(),
        audit,
        max_active_per_principal=settings.max_active_per_principal,
        max_attempts=settings.max_attempts,
        heartbeat_s=settings.heartbeat_s,
    )
    return AppContext(
        config=config,
        database=database,
        migrator=migrator,
        collections=SqlCollectionRepository(database),
        memory=memory,
        readiness=readiness,
        tokens=tokens,
        auth=Authenticator.from_config(config.auth, tokens),
        audit=audit,
        jobs=jobs,
    )
