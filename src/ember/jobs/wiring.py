"""Building the job system's parts from configuration (no Ray here: the actors call these)."""

from __future__ import annotations

from collections.abc import Callable

from ember.config import EmberConfig
from ember.jobs.kinds import KindRegistry
from ember.jobs.memory_kinds import memory_kinds
from ember.memory.service import MemoryService
from ember.storage.database import Database

__all__ = ["build_kinds"]


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

    return KindRegistry(memory_kinds(memory or lazy_memory))
