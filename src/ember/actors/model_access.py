"""How a Serve replica or a job worker reaches hosted models: through the named
ModelRegistry actor on a miss, straight to one of the model's ModelHost actors on a hit.

The registry is reached through :class:`~ember.actors.singleton.NamedActor`: while Ray
restarts it, calls are retried on a handle looked up again, then answered with
ServiceUnavailable (``open`` with ProviderUnavailable, so that the router can fall back to
another candidate)."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

import ray

from ember.actors.model_host import RayHostHandle
from ember.actors.names import MODEL_REGISTRY, NAMESPACE
from ember.actors.singleton import NamedActor
from ember.errors import ProviderUnavailable, ServiceUnavailable
from ember.models.protocol import HostHandle
from ember.models.records import LoadedModel, ModelRecord
from ember.models.replicas import ReplicaSet

__all__ = ["ModelHostDemand", "RayModelAccess"]


log = logging.getLogger(__name__)


def _logged_failure(done: asyncio.Future[Any]) -> None:
    if not done.cancelled() and done.exception() is not None:
        log.warning("refreshing a model's hosts failed: %s", done.exception())


def _actor_of(host: RayHostHandle) -> Any:
    """A host's key across copies of its handle: the actor handle (equal by actor id)."""
    return host.actor


@dataclass
class _Route:
    record: ModelRecord
    hosts: ReplicaSet[RayHostHandle]
    fetched: float


class RayModelAccess:
    """:class:`~ember.providers.llamacpp.ModelAccess` over the cluster's ModelRegistry actor.

    The hosts of each model are kept as one :class:`~ember.models.replicas.ReplicaSet` per
    model, so a call costs one hop to the host this process has the fewest calls on, and the
    registry hears of the use without being awaited (``touch``). The first calls for a model
    wait for one answer from the registry together. Once the hosts were fetched ``refresh_s``
    ago, the next call refreshes them in the background (a model that was scaled up or down)
    and goes out over the hosts known meanwhile. A cached host that the registry has since
    unloaded fails with ProviderUnavailable; the provider then forgets it and asks again.
    """

    def __init__(self, registry: Any = None, *, refresh_s: float = 1.0) -> None:
        self._registry = NamedActor(MODEL_REGISTRY, "the model registry", registry)
        self._refresh_s = refresh_s
        self._routes: dict[str, _Route] = {}
        self._fetching: dict[str, asyncio.Future[_Route]] = {}

    def registry(self) -> Any:
        """The registry's handle (looked up by name when none is held)."""
        return self._registry.handle()

    async def open(self, model: str, keep_alive_s: float | None) -> tuple[ModelRecord, HostHandle]:
        route = self._routes.get(model)
        if route is None:
            try:
                route = await asyncio.shield(self._fetch(model, keep_alive_s))
            except ServiceUnavailable as exc:
                raise ProviderUnavailable(exc.detail) from exc
        elif time.monotonic() - route.fetched >= self._refresh_s:
            self._fetch(model, keep_alive_s).add_done_callback(_logged_failure)
        else:
            self._registry.send("touch", model, keep_alive_s)
        return route.record, route.hosts

    def forget(self, model: str) -> None:
        self._routes.pop(model, None)

    def _fetch(self, model: str, keep_alive_s: float | None) -> asyncio.Future[_Route]:
        """The one fetch of ``model``'s hosts in flight, started if none is."""
        pending = self._fetching.get(model)
        if pending is None:
            pending = asyncio.ensure_future(self._refreshed(model, keep_alive_s))
            self._fetching[model] = pending
            pending.add_done_callback(lambda _: self._fetching.pop(model, None))
        return pending

    async def _refreshed(self, model: str, keep_alive_s: float | None) -> _Route:
        opened: tuple[ModelRecord, list[RayHostHandle]] = await self._registry.call(
            "replicas", model, keep_alive_s
        )
        record, hosts = opened
        route = self._routes.get(model)
        if route is None:
            route = _Route(record, ReplicaSet(hosts, key=_actor_of), time.monotonic())
            self._routes[model] = route
        else:
            route.hosts.update(hosts)
            route.record, route.fetched = record, time.monotonic()
        return route

    async def records(self) -> list[ModelRecord]:
        records: list[ModelRecord] = await self._registry.call("records")
        return records

    async def unload(self, model: str) -> bool:
        self.forget(model)
        unloaded: bool = await self._registry.call("unload", model)
        return unloaded

    async def loaded(self) -> list[LoadedModel]:
        loaded: list[LoadedModel] = await self._registry.call("ps")
        return loaded

    async def ready(self) -> tuple[bool, str]:
        ready: tuple[bool, str] = await self._registry.call("ready")
        return ready


class ModelHostDemand:
    """The model hosts' share of the autoscaler request, read from the ModelRegistry actor:
    ``(desired, waiting)`` bundles as its ``resource_demand`` answers, or none while the
    registry does not run (a cluster without hosted models: looked up again ``retry_s``
    later) or does not answer within ``timeout_s``."""

    def __init__(self, timeout_s: float = 2.0, retry_s: float = 10.0) -> None:
        self._timeout_s = timeout_s
        self._retry_s = retry_s
        self._registry: Any = None
        self._absent_until = float("-inf")

    async def __call__(self) -> tuple[list[dict[str, float]], list[dict[str, float]]]:
        if self._registry is None:
            if time.monotonic() < self._absent_until:
                return [], []
            try:
                self._registry = ray.get_actor(MODEL_REGISTRY, namespace=NAMESPACE)
            except ValueError:
                self._absent_until = time.monotonic() + self._retry_s
                return [], []
        try:
            ref = self._registry.resource_demand.remote()
            demand: tuple[list[dict[str, float]], list[dict[str, float]]] = await asyncio.wait_for(
                ref, self._timeout_s
            )
        except Exception as exc:
            self._registry = None
            if isinstance(exc, TimeoutError):
                reason = f"no answer within {self._timeout_s:g} s"
            else:
                reason = str(exc) or repr(exc)
            log.warning("the model registry did not report its hosts: %s", reason)
            return [], []
        return demand
