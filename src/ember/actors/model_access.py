"""How a Serve replica or a job worker reaches hosted models: through the named
ModelRegistry actor on a miss, straight to the ModelHost actor on a hit."""

from __future__ import annotations

from typing import Any

import ray

from ember.models.protocol import HostHandle
from ember.models.records import LoadedModel, ModelRecord

__all__ = ["MODEL_REGISTRY", "RayModelAccess"]

MODEL_REGISTRY = "ember-model-registry"
_NAMESPACE = "ember"


class RayModelAccess:
    """:class:`~ember.providers.llamacpp.ModelAccess` over the cluster's ModelRegistry actor.

    Host handles are cached per model, so a call costs one hop to its host; the registry hears
    of the use without being awaited (``touch``). A cached host that the registry has since
    unloaded fails with ProviderUnavailable; the provider then forgets it and asks again.
    """

    def __init__(self, registry: Any = None) -> None:
        self._registry = registry
        self._hosts: dict[str, tuple[ModelRecord, HostHandle]] = {}

    def registry(self) -> Any:
        if self._registry is None:
            self._registry = ray.get_actor(MODEL_REGISTRY, namespace=_NAMESPACE)
        return self._registry

    async def open(self, model: str, keep_alive_s: float | None) -> tuple[ModelRecord, HostHandle]:
        cached = self._hosts.get(model)
        if cached is not None:
            self.registry().touch.remote(model, keep_alive_s)
            return cached
        opened: tuple[ModelRecord, HostHandle] = await self.registry().acquire.remote(
            model, keep_alive_s
        )
        self._hosts[model] = opened
        return opened

    def forget(self, model: str) -> None:
        self._hosts.pop(model, None)

    async def records(self) -> list[ModelRecord]:
        records: list[ModelRecord] = await self.registry().records.remote()
        return records

    async def unload(self, model: str) -> bool:
        self.forget(model)
        unloaded: bool = await self.registry().unload.remote(model)
        return unloaded

    async def loaded(self) -> list[LoadedModel]:
        loaded: list[LoadedModel] = await self.registry().ps.remote()
        return loaded

    async def ready(self) -> tuple[bool, str]:
        ready: tuple[bool, str] = await self.registry().ready.remote()
        return ready
