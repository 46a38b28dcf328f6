"""Building the job system's parts from configuration (no Ray here: the actors call these)."""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable

from ember.config import EmberConfig
from ember.errors import ConfigError
from ember.jobs.kinds import JobKind, KindRegistry
from ember.jobs.llm_kinds import llm_kinds
from ember.jobs.memory_kinds import BulkRunner, memory_kinds
from ember.memory.service import MemoryService
from ember.models.catalog import SqlModelCatalog
from ember.models.local import LocalModels
from ember.providers.factory import ModelFacts, build_router
from ember.providers.llamacpp import ModelAccess
from ember.providers.router import Router
from ember.storage.database import Database

__all__ = ["build_kinds", "plugin_kinds"]


def build_kinds(
    config: EmberConfig,
    database: Database,
    *,
    memory: Callable[[], MemoryService] | None = None,
    memory_builder: Callable[[EmberConfig, Database], MemoryService] = MemoryService.build,
    models: Callable[[], ModelAccess] | None = None,
    bulk: BulkRunner | None = None,
) -> KindRegistry:
    """Every job kind this ember runs, for ``config``. Heavy parts (the memory plane and its
    embedding model, the router and its providers) are built on the first job that needs
    them (the plane by ``memory_builder``), unless ``memory`` gives the one to use.
    ``models`` reaches hosted models (the cluster's registry in a worker actor); unset, they
    are hosted in this process. ``bulk`` runs path ingests and reindexes on the cluster's
    pipelines."""
    lock = threading.Lock()
    built: dict[str, object] = {}

    def lazy_memory() -> MemoryService:
        with lock:
            if "memory" not in built:
                built["memory"] = memory_builder(config, database)
            found = built["memory"]
        assert isinstance(found, MemoryService)
        return found

    memory_of = memory or lazy_memory

    def access() -> ModelAccess:
        if models is not None:
            return models()
        return LocalModels.build(SqlModelCatalog(database), config.models)

    def router() -> Router:
        with lock:
            if "router" not in built:
                built["router"] = build_router(
                    config, database, models=access(), embedder=lambda: memory_of().embedder
                )
            found = built["router"]
        assert isinstance(found, Router)
        return found

    facts = ModelFacts(config, database, router, lambda: memory_of().packer.tokenizer)
    registry = KindRegistry(
        [
            *memory_kinds(memory_of, bulk=bulk, ingest_roots=config.memory.ingest_roots),
            *llm_kinds(router, memory_of, facts.tokenizer, facts.context_length),
        ]
    )
    for kind in plugin_kinds(config):
        registry.register(kind)
    return registry


def plugin_kinds(config: EmberConfig) -> list[JobKind]:
    """The kinds of every plug-in in ``jobs.plugins``: each ``module:function`` is called
    with the config and returns a list of :class:`JobKind`.

    :raises ConfigError: a plug-in cannot be imported or does not return kinds.
    """
    found: list[JobKind] = []
    for spec in filter(None, (part.strip() for part in (config.jobs.plugins or "").split(","))):
        module_name, _, attribute = spec.partition(":")
        try:
            function = getattr(importlib.import_module(module_name), attribute)
            kinds = function(config)
        except (ImportError, AttributeError, TypeError) as exc:
            raise ConfigError(f"jobs.plugins: {spec!r} cannot be loaded: {exc}") from exc
        if not isinstance(kinds, list) or not all(isinstance(k, JobKind) for k in kinds):
            raise ConfigError(f"jobs.plugins: {spec!r} did not return a list of JobKind")
        found.extend(kinds)
    return found
