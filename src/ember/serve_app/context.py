"""What the API needs, built once per replica and handed to the app factory."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from starlette.concurrency import run_in_threadpool

from ember.auth import Authenticator, SqlTokenRepository, TokenRepository
from ember.config import EmberConfig
from ember.jobs.bus import JobBus
from ember.jobs.events import SqlEventStore
from ember.jobs.repository import SqlJobRepository
from ember.jobs.service import JobService
from ember.jobs.wiring import build_kinds
from ember.memory.service import MemoryService
from ember.models.catalog import SqlModelCatalog
from ember.models.directory import ModelListing
from ember.models.load_hint import ResidencyHint
from ember.models.local import LocalModels
from ember.models.protocol import HostHandle, ModelDirectory
from ember.models.records import LoadedModel, ModelRecord
from ember.providers.factory import build_router, hosted_providers
from ember.providers.router import Router
from ember.serve_app.readiness import CheckResult, Readiness
from ember.storage import (
    AuditLog,
    CollectionRepository,
    Database,
    Migrator,
    SqlAuditLog,
    SqlCollectionRepository,
)

__all__ = ["AppContext", "ClusterModels", "build_context"]


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
    router: Router
    models: ModelDirectory


def _cluster_bus() -> JobBus:
    from ember.actors.builder import RayJobBus

    return RayJobBus()


class ClusterModels(Protocol):
    """Hosted models as the API sees them: access for the provider, and what is loaded."""

    async def open(
        self, model: str, keep_alive_s: float | None
    ) -> tuple[ModelRecord, HostHandle]: ...

    def forget(self, model: str) -> None: ...

    async def records(self) -> list[ModelRecord]: ...

    async def unload(self, model: str) -> bool: ...

    async def loaded(self) -> list[LoadedModel]: ...

    async def ready(self) -> tuple[bool, str]: ...


def _default_models(config: EmberConfig, database: Database) -> ClusterModels:
    import ray

    if ray.is_initialized():
        from ember.actors.model_access import RayModelAccess

        return RayModelAccess(refresh_s=config.models.route_refresh_s)
    return LocalModels.build(SqlModelCatalog(database), config.models)


def _default_memory(config: EmberConfig, database: Database) -> MemoryService:
    """The memory plane; on Ray, with its indexes in shard actors where configured."""
    from ember.actors.memory_plane import cluster_memory

    return cluster_memory(config, database)


def build_context(
    config: EmberConfig,
    memory: MemoryService | None = None,
    bus: JobBus | None = None,
    models: ClusterModels | None = None,
) -> AppContext:
    """Wire the default adapters for ``config``; readiness checks the database is migrated
    and, when a ``llamacpp`` provider is configured, that the warm models are loaded.

    ``memory`` defaults to the configured memory plane (it loads its model lazily); ``bus``
    to the cluster's job system actors (looked up on the first job call); ``models`` to the
    cluster's model registry actor when Ray is initialized (a Serve replica), else to models
    hosted in this process.
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
    memory = memory or _default_memory(config, database)
    audit = SqlAuditLog(database)
    hosted = hosted_providers(config)
    access = (models or _default_models(config, database)) if hosted else None
    hint = None if access is None else ResidencyHint(access.loaded, hosted)
    router = build_router(
        config, database, models=access, embedder=lambda: memory.embedder, load_hint=hint
    )
    if access is not None:
        readiness.add("models", _models_ready(access))

    async def loaded() -> list[LoadedModel]:
        return [] if access is None else await access.loaded()

    directory = ModelListing(
        router.providers,
        config.router.aliases,
        loaded,
        bare=[
            name
            for name in (config.router.default_provider, config.router.default_embedding_provider)
            if name is not None
        ],
        load=None if access is None else _loader(config, router, access),
    )
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
        router=router,
        models=directory,
    )


def _loader(
    config: EmberConfig, router: Router, access: ClusterModels
) -> Callable[[str, float | None], Awaitable[bool]]:
    hosted = hosted_providers(config)

    async def load(name: str, keep_alive_s: float | None) -> bool:
        candidate = router.candidates(name)[0]
        if candidate.provider not in hosted:
            return False
        if keep_alive_s == 0:
            await access.unload(candidate.model)
            return True
        await access.open(candidate.model, keep_alive_s)
        return False

    return load


def _models_ready(access: ClusterModels) -> Callable[[], Awaitable[CheckResult]]:
    async def check() -> CheckResult:
        ok, detail = await access.ready()
        return CheckResult(ok, detail)

    return check
