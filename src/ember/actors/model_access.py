"""How a Serve replica or a job worker reaches hosted models: through the named
ModelRegistry actor on a miss, straight to one of the model's ModelHost actors on a hit."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import ray
from ray.exceptions import RayActorError

from ember.actors.model_host import RayHostHandle
from ember.actors.names import NAMESPACE
from ember.models.protocol import HostHandle
from ember.models.records import LoadedModel, ModelRecord
from ember.models.replicas import ReplicaSet

__all__ = ["MODEL_REGISTRY", "ModelHostDemand", "RayModelAccess"]

MODEL_REGISTRY = "ember-model-registry"

log = logging.getLogger(__name__)


def _actor_of(host: RayHostHandle) -> Any:
    """A host's key across copies of its handle: the actor handle (equal by actor id)."""
    return host.actor


class RayModelAccess:
    """:class:`~ember.providers.llamacpp.ModelAccess` over the cluster's ModelRegistry actor.

    The hosts of each model are cached for ``refresh_s`` seconds as a
    :class:`~ember.models.replicas.ReplicaSet`, so a call costs one hop to the host this
    process has the fewest calls on; the registry hears of the use without being awaited
    (``touch``). Past ``refresh_s`` the next call asks the registry for the current hosts (a
    model that was scaled up or down). A cached host that the registry has since unloaded
    fails with ProviderUnavailable; the provider then forgets it and asks again.
    """

    def __init__(self, registry: Any = None, *, refresh_s: float = 1.0) -> None:
        self._registry = registry
        self._refresh_s = refresh_s
        self._routes: dict[str, tuple[ModelRecord, ReplicaSet[RayHostHandle], float]] = {}

    def registry(self) -> Any:
        if self._registry is None:
            self._registry = ray.get_actor(MODEL_REGISTRY, namespace=NAMESPACE)
        return self._registry

    async def open(self, model: str, keep_alive_s: float | None) -> tuple[ModelRecord, HostHandle]:
        cached = self._routes.get(model)
        now = time.monotonic()
        if cached is not None and now - cached[2] < self._refresh_s:
            self.registry().touch.remote(model, keep_alive_s)
            return cached[0], cached[1]
        opened: tuple[ModelRecord, list[RayHostHandle]] = await self.registry().replicas.remote(
            model, keep_alive_s
        )
        record, hosts = opened
        if cached is None:
            route = ReplicaSet(hosts, key=_actor_of)
        else:
            route = cached[1]
            route.update(hosts)
        self._routes[model] = (record, route, time.monotonic())
        return record, route

    def forget(self, model: str) -> None:
        self._routes.pop(model, None)

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


class ModelHostDemand:
    """The model hosts' share of the autoscaler request, read from the ModelRegistry actor:
    ``(desired, waiting)`` bundles as its ``resource_demand`` answers, or none while the
    registry does not run (a cluster without hosted models) or does not answer within
    ``timeout_s``."""

    def __init__(self, timeout_s: float = 2.0) -> None:
        self._timeout_s = timeout_s
        self._registry: Any = None

    async def __call__(self) -> tuple[list[dict[str, float]], list[dict[str, float]]]:
        try:
            if self._registry is None:
                self._registry = ray.get_actor(MODEL_REGISTRY, namespace=NAMESPACE)
            ref = self._registry.resource_demand.remote()
            demand: tuple[list[dict[str, float]], list[dict[str, float]]] = await asyncio.wait_for(
                ref, self._timeout_s
            )
        except ValueError:
            return [], []
        except (TimeoutError, RayActorError) as exc:
            self._registry = None
            log.warning("the model registry did not report its hosts: %s", exc)
            return [], []
        return demand
