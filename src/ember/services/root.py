"""The composition root: every service of a running ember, built from its configuration.

Every entry point builds what it needs here, and only here: the API replica
(:func:`ember.serve_app.context.build_context`), the job workers, the job dispatcher, the CLI
and the benchmarks. Nothing here imports Ray. Where a service has a cluster implementation,
the Ray side passes it in (``ember.actors.cluster_services``), as Ray's own
``build_llm_deployment`` injects the engine into a plain ``LLMServer``:

============  ================================  =========================================
part          default (one process)             on a Ray cluster
============  ================================  =========================================
``models``    :class:`LocalModels` (in process)  ``RayModelAccess`` (ModelRegistry actor)
``memory``    :func:`memory_plane`               shard actors, an embedding pool
``bus``       none (give one to submit jobs)     ``RayJobBus`` (EventHub, JobDispatcher)
``bulk``      none (path ingests run in place)   ``ClusterPipelines`` (Ray Data)
``tracing``   recent traces in this process      recent traces in the EventHub actor
============  ================================  =========================================

Heavy parts are built on first use, once, thread-safely: the memory plane (and its embedding
model), the hosted models, the router and its providers. Building a :class:`Services` itself
only opens the database engine.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar, cast

from opentelemetry.trace import Tracer

from ember.agents.profiles import SqlAgentProfiles
from ember.agents.runs import SqlAgentRuns
from ember.auth import Authenticator, SqlTokenRepository, SqlWorkspaceRepository
from ember.config import EmberConfig
from ember.errors import SandboxUnavailable, VMUnavailable
from ember.jobs.agent_kind import AgentParts, agent_kind
from ember.jobs.artifacts import ArtifactLimits, SqlArtifactStore
from ember.jobs.bus import NoJobSystem
from ember.jobs.events import SqlEventStore
from ember.jobs.kinds import KindRegistry
from ember.jobs.llm_kinds import llm_kinds
from ember.jobs.memory_kinds import memory_kinds
from ember.jobs.plugins import plugin_kinds
from ember.jobs.protocol import BulkRunner, JobBus
from ember.jobs.repository import SqlJobRepository
from ember.jobs.service import JobService
from ember.jobs.vm_kind import VMParts, vm_kind
from ember.memory.service import MemoryService
from ember.models.catalog import SqlModelCatalog
from ember.models.load_hint import ResidencyHint
from ember.models.local import LocalModels
from ember.models.protocol import ModelAccess
from ember.observability.metrics import Metrics, PrometheusMetrics
from ember.observability.traces import RecentTraces
from ember.observability.tracing import Tracing
from ember.providers.registry import ProviderRegistry
from ember.providers.router import Router
from ember.sandbox.bubblewrap import BubblewrapSandbox
from ember.sandbox.protocol import Sandbox
from ember.services.adapters import hypervisor, memory_plane
from ember.services.llm import ModelFacts, build_router, hosted_providers
from ember.storage import Database, SqlAuditLog, SqlCollectionRepository
from ember.vm.image import GuestImage
from ember.vm.lifecycle import SqlVMRecords
from ember.vm.runner import VMRunner
from ember.vm.sandbox import VMSandbox

__all__ = ["MemoryBuilder", "ModelsFactory", "Services", "local_tracing"]

T = TypeVar("T")


class MemoryBuilder(Protocol):
    """Builds the memory plane over a database, its spans made by ``tracer`` and its metrics
    recorded in ``metrics`` (:func:`memory_plane` by default)."""

    def __call__(
        self,
        config: EmberConfig,
        database: Database,
        *,
        tracer: Tracer | None = None,
        metrics: Metrics | None = None,
    ) -> MemoryService: ...


ModelsFactory = Callable[[], ModelAccess]
"""Reaches the hosted models; called once, on first use."""


class Services:
    """The services of one process, built from ``config`` on first use (see the module).

    Use :meth:`build`; the constructor takes the parts as they are. :meth:`close` releases the
    memory plane (if it was built) and the database engine.
    """

    def __init__(
        self,
        config: EmberConfig,
        database: Database,
        *,
        models: ModelsFactory | None = None,
        memory: MemoryBuilder | MemoryService | None = None,
        bus: JobBus | None = None,
        bulk: BulkRunner | None = None,
        providers: ProviderRegistry | None = None,
        tracing: Tracing | None = None,
        metrics: Metrics | None = None,
        metrics_text: Callable[[], Awaitable[bytes]] | None = None,
    ) -> None:
        self.config = config
        self.database = database
        self.tracing = tracing or local_tracing(config)
        local = PrometheusMetrics()
        self.metrics: Metrics = metrics or local
        """Where this process records :data:`~ember.observability.metrics.FAMILIES`."""
        self.metrics_text = metrics_text or _rendered(local)
        """The families as ``GET /metrics`` shows them (this process's, or the cluster's)."""
        self.bus = bus
        self.bulk = bulk
        self.hosted = frozenset(hosted_providers(config))
        self.tokens = SqlTokenRepository(database)
        self.workspaces = SqlWorkspaceRepository(database)
        self.audit = SqlAuditLog(database)
        self.collections = SqlCollectionRepository(database)
        self.catalog = SqlModelCatalog(database)
        self.agents = SqlAgentProfiles(database)
        self.agent_runs = SqlAgentRuns(database)
        self.artifacts = SqlArtifactStore(database)
        self._models = models
        self._memory = memory
        self._providers = providers
        self._lock = threading.RLock()
        self._built: dict[str, object] = {}
        if isinstance(memory, MemoryService):
            self._built["memory"] = memory

    @classmethod
    def build(
        cls,
        config: EmberConfig,
        *,
        database: Database | None = None,
        models: ModelsFactory | None = None,
        memory: MemoryBuilder | MemoryService | None = None,
        bus: JobBus | None = None,
        bulk: BulkRunner | None = None,
        providers: ProviderRegistry | None = None,
        tracing: Tracing | None = None,
        metrics: Metrics | None = None,
        metrics_text: Callable[[], Awaitable[bytes]] | None = None,
    ) -> Services:
        """The services for ``config`` over ``database`` (default: the configured one).

        ``models`` reaches the hosted models (default: hosted in this process), ``memory``
        builds the memory plane or is the one to use, ``bus`` is the live job system the API
        submits to, ``bulk`` runs path ingests and reindexes on the cluster's pipelines, and
        ``providers`` finds provider adapters (default: the built-in kinds and the installed
        plug-ins). ``tracing`` makes this process's spans (default: :func:`local_tracing`);
        ``metrics`` records its metrics and ``metrics_text`` reads them back (default: in this
        process).
        """
        return cls(
            config,
            database or Database.from_config(config),
            models=models,
            memory=memory,
            bus=bus,
            bulk=bulk,
            providers=providers,
            tracing=tracing,
            metrics=metrics,
            metrics_text=metrics_text,
        )

    def _once(self, name: str, make: Callable[[], T], kind: type[T]) -> T:
        with self._lock:
            if name not in self._built:
                self._built[name] = make()
            found = self._built[name]
        assert isinstance(found, kind)
        return found

    @property
    def memory(self) -> MemoryService:
        """The memory plane (its embedding model loads on the first embed)."""

        def make() -> MemoryService:
            builder = self._memory
            tracer = self.tracing.tracer("ember.memory")
            metrics = self.metrics
            if builder is None or isinstance(builder, MemoryService):
                return memory_plane(self.config, self.database, tracer=tracer, metrics=metrics)
            return builder(self.config, self.database, tracer=tracer, metrics=metrics)

        return self._once("memory", make, MemoryService)

    @property
    def sandbox(self) -> Sandbox:
        """The sandbox agent commands run in (bubblewrap; checked on first use)."""

        def make() -> BubblewrapSandbox:
            config = self.config
            return BubblewrapSandbox(
                protected_paths=[config.home_dir, config.agents_work_dir],
                tracer=self.tracing.tracer("ember.sandbox"),
                metrics=self.metrics,
            )

        return self._once("sandbox", make, BubblewrapSandbox)

    @property
    def vm_sandbox(self) -> Sandbox:
        """The VM tier of the sandbox, for agent profiles with ``isolation: vm`` (libvirt;
        nothing is contacted before the first VM).

        :raises SandboxUnavailable: libvirt-python is not installed.
        """

        def make() -> VMSandbox:
            config = self.config
            runner = self.vm_runner
            try:
                found = hypervisor(config.vm.uri)
            except VMUnavailable as exc:
                raise SandboxUnavailable(exc.detail) from exc
            return VMSandbox(
                found,
                lambda: GuestImage.load(config.vm_image_dir),
                uri=config.vm.uri,
                image_dir=config.vm_image_dir,
                work_root=config.vm_work_dir,
                accel=runner.accel,
                known_accel=runner.known_accel,
                disk_mib=config.vm.disk_mib,
                protected_paths=[config.home_dir, config.agents_work_dir],
                tracer=self.tracing.tracer("ember.sandbox"),
                metrics=self.metrics,
            )

        return self._once("vm_sandbox", make, VMSandbox)

    @property
    def vm_records(self) -> SqlVMRecords:
        """Every VM's life, in the ``vms`` table."""
        return self._once("vm_records", lambda: SqlVMRecords(self.database), SqlVMRecords)

    @property
    def vm_runner(self) -> VMRunner:
        """Runs commands in throwaway VMs on this node (libvirt; nothing is contacted
        before the first VM).

        :raises VMUnavailable: libvirt-python is not installed.
        """

        def make() -> VMRunner:
            config = self.config
            return VMRunner(
                hypervisor(config.vm.uri),
                lambda: GuestImage.load(config.vm_image_dir),
                config.vm_work_dir,
                records=self.vm_records,
                accel=config.vm.accel,
                console_bytes=config.vm.console_bytes,
                tracer=self.tracing.tracer("ember.vm"),
                metrics=self.metrics,
            )

        return self._once("vm_runner", make, VMRunner)

    @property
    def models(self) -> ModelAccess | None:
        """The hosted models, or ``None`` when no ``llamacpp`` provider is configured."""
        if not self.hosted:
            return None
        with self._lock:
            if "models" not in self._built:
                self._built["models"] = (
                    self._models()
                    if self._models is not None
                    else LocalModels.build(self.catalog, self.config.models, metrics=self.metrics)
                )
            found = self._built["models"]
        return cast(ModelAccess, found)

    @property
    def router(self) -> Router:
        """The router over every configured provider, equal candidates ordered by which
        hosted models are resident."""

        def make() -> Router:
            access = self.models
            hint = None if access is None else ResidencyHint(access.loaded, self.hosted)
            return build_router(
                self.config,
                self.database,
                models=access,
                embedder=lambda: self.memory.embedder,
                registry=self._providers,
                load_hint=hint,
                tracer=self.tracing.tracer("ember.providers"),
                metrics=self.metrics,
            )

        return self._once("router", make, Router)

    @property
    def facts(self) -> ModelFacts:
        """Each model alias's tokenizer and context length, for packing prompts."""
        return self._once(
            "facts",
            lambda: ModelFacts(
                self.config,
                self.database,
                lambda: self.router,
                lambda: self.memory.packer.tokenizer,
            ),
            ModelFacts,
        )

    @property
    def kinds(self) -> KindRegistry:
        """Every job kind this ember runs: the built-in ones and the plug-ins' (building
        it loads nothing heavy; each kind builds what it needs on its first job).

        :raises ConfigError: a plug-in cannot be loaded.
        """

        def make() -> KindRegistry:
            def memory() -> MemoryService:
                return self.memory

            def router() -> Router:
                return self.router

            facts = self.facts
            registry = KindRegistry(
                [
                    *memory_kinds(
                        memory, bulk=self.bulk, ingest_roots=self.config.memory.ingest_roots
                    ),
                    *llm_kinds(router, memory, facts.tokenizer, facts.context_length),
                    agent_kind(self._agent_parts(memory, router)),
                    vm_kind(self._vm_parts()),
                ]
            )
            for kind in plugin_kinds(self.config):
                registry.register(kind)
            return registry

        return self._once("kinds", make, KindRegistry)

    def _agent_parts(
        self, memory: Callable[[], MemoryService], router: Callable[[], Router]
    ) -> AgentParts:
        settings = self.config.agents
        return AgentParts(
            profiles=lambda: self.agents,
            runs=lambda: self.agent_runs,
            artifacts=lambda: self.artifacts,
            router=router,
            memory=memory,
            sandbox=lambda: self.sandbox,
            vm_sandbox=lambda: self.vm_sandbox,
            tokens=lambda: self.tokens,
            audit=lambda: self.audit,
            work_root=self.config.agents_work_dir,
            artifact_limits=ArtifactLimits(
                settings.max_artifact_files,
                settings.max_artifact_bytes,
                settings.max_artifact_file_bytes,
            ),
            tracer=self.tracing.tracer("ember.agents"),
            capture_content=self.tracing.capture_content,
            metrics=self.metrics,
        )

    def _vm_parts(self) -> VMParts:
        settings = self.config.agents
        return VMParts(
            runner=lambda: self.vm_runner,
            artifacts=lambda: self.artifacts,
            settings=self.config.vm,
            work_root=self.config.vm_work_dir,
            artifact_limits=ArtifactLimits(
                settings.max_artifact_files,
                settings.max_artifact_bytes,
                settings.max_artifact_file_bytes,
            ),
        )

    @property
    def jobs(self) -> JobService:
        """The job system as the API uses it, over :attr:`bus` (without one, stored jobs can
        be read and anything live raises :class:`~ember.errors.NotReady`)."""
        bus = self.bus or NoJobSystem()
        settings = self.config.jobs

        def make() -> JobService:
            return JobService(
                SqlJobRepository(self.database),
                SqlEventStore(self.database),
                self.kinds,
                bus,
                self.audit,
                max_active_per_principal=settings.max_active_per_principal,
                max_attempts=settings.max_attempts,
                heartbeat_s=settings.heartbeat_s,
            )

        return self._once("jobs", make, JobService)

    @property
    def auth(self) -> Authenticator:
        """Bearer tokens and the loopback rule, as ``auth`` configures them."""
        return self._once(
            "auth", lambda: Authenticator.from_config(self.config.auth, self.tokens), Authenticator
        )

    def close(self) -> None:
        """Close the memory plane if it was built, then the database engine; send the
        spans still pending and stop tracing."""
        with self._lock:
            memory = self._built.get("memory")
        if isinstance(memory, MemoryService):
            memory.close()
        self.database.dispose()
        self.tracing.shutdown()


def _rendered(metrics: PrometheusMetrics) -> Callable[[], Awaitable[bytes]]:
    async def text() -> bytes:
        return metrics.render()

    return text


def local_tracing(config: EmberConfig, service: str = "ember") -> Tracing:
    """Tracing as ``config.tracing`` says, into a store of recent traces in this process."""
    settings = config.tracing
    store = RecentTraces(settings.recent_traces, settings.spans_per_trace)
    return Tracing(settings, service, store=store)
