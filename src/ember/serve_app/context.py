"""What the API needs, built once per replica and handed to the app factory."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool

from ember.agents.profiles import SqlAgentProfiles
from ember.agents.runs import SqlAgentRuns
from ember.auth import Authenticator, TokenRepository
from ember.config import EmberConfig
from ember.errors import EmberError
from ember.jobs.artifacts import SqlArtifactStore
from ember.jobs.protocol import JobBus
from ember.jobs.service import JobService
from ember.memory.service import MemoryService
from ember.models.protocol import ModelAccess, ModelDirectory
from ember.models.records import LoadedModel
from ember.observability.metrics import Metrics
from ember.observability.tracing import Tracing
from ember.providers.model_listing import ModelListing
from ember.providers.router import Router
from ember.serve_app.readiness import Check, CheckResult, Readiness
from ember.services import Services
from ember.storage import AuditLog, CollectionRepository, Database, Migrator
from ember.vm.lifecycle import SqlVMRecords

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
    router: Router
    models: ModelDirectory
    agents: SqlAgentProfiles
    agent_runs: SqlAgentRuns
    artifacts: SqlArtifactStore
    vms: SqlVMRecords
    tracing: Tracing
    metrics: Metrics
    metrics_text: Callable[[], Awaitable[bytes]]


def build_context(
    config: EmberConfig,
    memory: MemoryService | None = None,
    bus: JobBus | None = None,
    models: ModelAccess | None = None,
    *,
    services: Services | None = None,
) -> AppContext:
    """The API over ``services`` (default: :meth:`Services.build` of ``config`` with the
    given ``memory``, ``bus`` and ``models``). Readiness checks the database is migrated and,
    when a ``llamacpp`` provider is configured, that the warm models are loaded.

    The Ray side passes the cluster's services (``ember.actors.cluster_services``); tests
    pass their own parts.
    """
    if services is None:
        services = Services.build(
            config,
            memory=memory,
            bus=bus,
            models=None if models is None else (lambda: models),
        )
    database = services.database
    migrator = Migrator(database)
    readiness = Readiness(cache_s=config.server.probe_cache_s)

    async def database_ready() -> CheckResult:
        await run_in_threadpool(database.ping)
        await run_in_threadpool(migrator.require_current)
        return CheckResult(True, f"{database.dialect} at revision {migrator.head()}")

    readiness.add("database", database_ready)
    readiness.add("vm", _vm_state(services))
    access = services.models
    router = services.router
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
        load=None if access is None else _loader(services.hosted, router, access),
    )
    return AppContext(
        config=config,
        database=database,
        migrator=migrator,
        collections=services.collections,
        memory=services.memory,
        readiness=readiness,
        tokens=services.tokens,
        auth=services.auth,
        audit=services.audit,
        jobs=services.jobs,
        router=router,
        models=directory,
        agents=services.agents,
        agent_runs=services.agent_runs,
        artifacts=services.artifacts,
        vms=services.vm_records,
        tracing=services.tracing,
        metrics=services.metrics,
        metrics_text=services.metrics_text,
    )


def _vm_state(services: Services) -> Check:
    """Informational: whether ``vm`` jobs can run and under what acceleration. VMs are
    optional, so this check never fails ember's readiness; its detail says what is missing."""

    async def check() -> CheckResult:
        def describe() -> str:
            try:
                ok, detail = services.vm_runner.describe()
            except EmberError as exc:
                ok, detail = False, exc.detail
            return detail if ok else f"unavailable: {detail}"

        return CheckResult(True, await run_in_threadpool(describe))

    return check


def _loader(
    hosted: Collection[str], router: Router, access: ModelAccess
) -> Callable[[str, float | None], Awaitable[bool]]:

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


def _models_ready(access: ModelAccess) -> Callable[[], Awaitable[CheckResult]]:
    async def check() -> CheckResult:
        ok, detail = await access.ready()
        return CheckResult(ok, detail)

    return check
