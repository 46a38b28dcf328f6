"""Building the job system's parts from configuration (no Ray here: the actors call these)."""

from __future__ import annotations

import importlib
from collections.abc import Callable

from ember.config import EmberConfig
from ember.errors import ConfigError
from ember.jobs.kinds import JobKind, KindRegistry
from ember.jobs.memory_kinds import memory_kinds
from ember.memory.service import MemoryService
from ember.storage.database import Database

__all__ = ["build_kinds", "plugin_kinds"]


def build_kinds(
    config: EmberConfig,
    database: Database,
    *,
    memory: Callable[[], MemoryService] | None = None,
) -> KindRegistry:
    """Every job kind this ember runs, for ``config``. Heavy parts (the memory plane and its
    embedding model) are built on the first job that needs them, unless ``memory`` gives
    the one to use."""
    built: list[MemoryService] = []

    def lazy_memory() -> MemoryService:
        if not built:
            built.append(MemoryService.build(config, database))
        return built[0]

    registry = KindRegistry(memory_kinds(memory or lazy_memory))
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
