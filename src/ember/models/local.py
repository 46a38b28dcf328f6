"""Models hosted in this process: the launcher and access used without a cluster (tests, the
CLI, a single process) — the same registry logic as the actors, without Ray."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any

from ember.config.models import ModelsConfig
from ember.models.host import ModelHost
from ember.models.protocol import HostHandle, ModelCatalog
from ember.models.records import LoadedModel, ModelRecord
from ember.models.registry import ModelRegistry, NodeCapacity
from ember.observability.metrics import Metrics

__all__ = ["LocalLauncher", "LocalModels", "node_memory_bytes"]


def node_memory_bytes() -> int:
    """Physical memory of this machine."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


class LocalLauncher:
    """Hosts models in this process, on one node called ``local``; their queue time is
    recorded with ``metrics``."""

    def __init__(
        self,
        settings: ModelsConfig,
        *,
        llama_class: Callable[..., Any] | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._settings = settings
        self._llama_class = llama_class
        self._metrics = metrics

    async def nodes(self) -> list[NodeCapacity]:
        capacity = self._settings.memory_bytes or node_memory_bytes() // 2
        return [NodeCapacity("local", capacity)]

    async def start(self, record: ModelRecord, node: NodeCapacity) -> ModelHost:
        host = ModelHost(
            record,
            self._settings,
            gpu=node.gpu,
            llama_class=self._llama_class,
            metrics=self._metrics,
        )
        await asyncio.to_thread(host.load)
        return host


class LocalModels:
    """:class:`~ember.providers.llamacpp.ModelAccess` straight over a registry, plus what the
    API asks of the cluster's models (``loaded``, ``ready``)."""

    def __init__(self, registry: ModelRegistry[ModelHost], catalog: ModelCatalog) -> None:
        self._registry = registry
        self._catalog = catalog

    @classmethod
    def build(cls, catalog: ModelCatalog, settings: ModelsConfig, **launcher: Any) -> LocalModels:
        """Over a new registry with a :class:`LocalLauncher` (``launcher``: its ``metrics``, and
        ``llama_class`` for tests)."""
        return cls(ModelRegistry(catalog, LocalLauncher(settings, **launcher), settings), catalog)

    @property
    def registry(self) -> ModelRegistry[ModelHost]:
        return self._registry

    async def open(self, model: str, keep_alive_s: float | None) -> tuple[ModelRecord, HostHandle]:
        host = await self._registry.acquire(model, keep_alive_s)
        return host.record, host

    def forget(self, model: str) -> None:
        return None

    async def records(self) -> list[ModelRecord]:
        return await asyncio.to_thread(self._catalog.all)

    async def unload(self, model: str) -> bool:
        return await self._registry.unload(model)

    async def loaded(self) -> list[LoadedModel]:
        return await self._registry.ps()

    async def ready(self) -> tuple[bool, str]:
        return await asyncio.to_thread(self._registry.ready)
