"""ModelRegistry: which local models are loaded, on how many hosts, on which nodes, until when.

Models load on demand (:meth:`ModelRegistry.acquire`) where :func:`ember.placement.room.place`
finds room: a GPU node with room and a free GPU first, then the node that needs the fewest
evictions, then the one with the most free room. When no node has room for the next one,
hosts of idle models are closed least-recently-used first (a model with calls in flight never
loses a host to another); when even that is not enough,
:class:`~ember.errors.ModelCapacityExceeded` is raised and nothing is unloaded. Each use sets
the model's expiry from its ``keep_alive`` as Ollama does: ``0`` unloads it after the call,
a negative value keeps it until it is evicted for room, ``None`` is ``models.keep_alive_s``.
A ``warm`` model stays loaded whatever a call's ``keep_alive`` says (until evicted for room or
unloaded by :meth:`unload`, which the API allows ``admin`` callers only), so one caller cannot
take out the model everyone's readiness depends on.

:meth:`sweep` unloads expired models and forgets hosts that died. ``warm`` models are loaded by
:meth:`warm` at start, and :meth:`ready` reports whether they all are. A model may have several
hosts: :meth:`rescale` grows and shrinks them with the calls on them, and room is counted per
host. Nothing here imports Ray: the ``ModelRegistry`` actor is a shell, and the launcher
decides where hosts run (in this process, or as ``ModelHost`` actors). The hosts themselves and
the room they take are kept by :class:`~ember.models.fleet.Fleet`; how many each model has is
decided by :class:`~ember.models.host_scaling.HostScaling`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Generic, TypeVar

from ember.config.models import ModelsConfig
from ember.models.fleet import Fleet, Host, HostDemand, Resident, busy
from ember.models.host_scaling import HostScaling
from ember.models.protocol import HostHandle, HostLauncher, ModelCatalog, Scaler
from ember.models.records import LoadedModel
from ember.placement.room import NodeCapacity

__all__ = ["HostDemand", "ModelRegistry", "NodeCapacity"]

log = logging.getLogger(__name__)

H = TypeVar("H", bound=HostHandle)


class ModelRegistry(Generic[H]):
    """Loads, tracks, scales and evicts hosted models over ``catalog`` with ``launcher``.

    ``scaler`` makes one :class:`Scaler` per model; without it every model has one host.
    """

    def __init__(
        self,
        catalog: ModelCatalog,
        launcher: HostLauncher[H],
        settings: ModelsConfig,
        *,
        clock: Callable[[], float] = time.time,
        scaler: Callable[[str], Scaler] | None = None,
    ) -> None:
        self._catalog = catalog
        self._fleet: Fleet[H] = Fleet(launcher, settings, clock)
        self._scaling = HostScaling(self._fleet, scaler)
        self._fleet.on_forget = self._scaling.forget
        self._loading: dict[str, asyncio.Task[Resident[H]]] = {}
        self._warm_errors: dict[str, str] = {}

    async def acquire(self, name: str, keep_alive_s: float | None = None) -> H:
        """The least busy host of ``name``, loading it first when it is not resident; marks
        it used.

        :raises ModelNotRegistered: no model has this name.
        :raises ModelDigestMismatch: its file is not the pinned one.
        :raises ModelCapacityExceeded: no node has room, even after evicting idle models.
        """
        hosts = await self.replicas(name, keep_alive_s)
        if len(hosts) == 1:
            return hosts[0]
        loads = [await host.busy() for host in hosts]
        return hosts[loads.index(min(loads))]

    async def replicas(self, name: str, keep_alive_s: float | None = None) -> list[H]:
        """Every host of ``name`` that takes calls now (loading it first); marks it used.
        Raises as :meth:`acquire`."""
        resident = self._fleet.resident.get(name)
        if resident is None or not resident.hosts:
            task = self._loading.get(name)
            if task is None:
                task = asyncio.create_task(self._load(name))
                self._loading[name] = task
                task.add_done_callback(lambda _: self._loading.pop(name, None))
            resident = await asyncio.shield(task)
        self._use(resident, keep_alive_s)
        return [host.handle for host in resident.hosts if host.handle is not None]

    def touch(self, name: str, keep_alive_s: float | None = None) -> None:
        """Mark a resident model used now (a call went to its host directly)."""
        resident = self._fleet.resident.get(name)
        if resident is not None:
            self._use(resident, keep_alive_s)

    async def unload(self, name: str) -> bool:
        """Unload ``name`` (every host of it) if it is resident; ``True`` when it was."""
        async with self._fleet.lock:
            resident = self._fleet.drop(name)
        if resident is None:
            return False
        for host in list(resident.hosts):
            await self._fleet.stop(host, "unloaded")
        return True

    async def sweep(self) -> list[str]:
        """Forget hosts that died, then unload every idle model whose keep-alive has passed;
        the names unloaded."""
        await self._fleet.prune()
        now = self._fleet.clock()
        expired = [
            r
            for r in list(self._fleet.resident.values())
            if r.expires_at is not None and r.expires_at <= now and await busy(r.hosts) == 0
        ]
        for resident in expired:
            await self.unload(resident.record.name)
        return [r.record.name for r in expired]

    async def rescale(self) -> dict[str, int]:
        """Size each resident model's hosts to its demand, the calls running or waiting on
        them, as its :class:`Scaler` answers; the host count of each model after.

        A model short of hosts takes back one of its draining hosts if it has one, else starts
        the hosts it lacks one after another, each where it has room without closing another
        model's host (only idle draining hosts past their grace): GPU nodes first, then nodes
        that do not host it yet. A model on a GPU grows only onto GPU nodes with a free GPU.
        The lock is not held while a host starts. A host that cannot be started is logged,
        counted in :meth:`host_demand` until the model no longer wants it, and the model is not
        grown again for ``models.scale_cooldown_s``.

        A model with too many hosts takes the least busy out of routing (then CPU before GPU,
        newest first). A draining host is closed at the first rescale at which it is idle and
        has been out of routing for ``2 * models.route_refresh_s``, when no caller still routes
        to it.
        """
        return await self._scaling.rescale()

    def host_demand(self) -> HostDemand:
        """The hosts held now and those :meth:`rescale` wanted but could not start (a GPU
        host wanted for a model whose first host is on a GPU node)."""
        return self._scaling.host_demand()

    async def warm(self) -> list[str]:
        """Load every model registered ``warm``; the names loaded. A model that fails is
        reported by :meth:`ready` and does not stop the others."""
        loaded = []
        for record in self._catalog.all():
            if not record.warm:
                continue
            try:
                await self.acquire(record.name, -1)
            except Exception as exc:
                self._warm_errors[record.name] = f"{type(exc).__name__}: {exc}"
                log.error("warming %s failed: %s", record.name, exc)
            else:
                self._warm_errors.pop(record.name, None)
                loaded.append(record.name)
        return loaded

    def ready(self) -> tuple[bool, str]:
        """Whether every ``warm`` model is resident, and a one-line detail."""
        wanted = [r.name for r in self._catalog.all() if r.warm]
        missing = [name for name in wanted if name not in self._fleet.resident]
        if not missing:
            return True, f"{len(wanted)} warm model(s) loaded"
        reasons = [f"{n} ({self._warm_errors.get(n, 'loading')})" for n in missing]
        return False, "not loaded: " + ", ".join(reasons)

    async def ps(self) -> list[LoadedModel]:
        """The resident models, most recently used first; ``node_id`` and ``gpu`` are those
        of the first host."""
        residents = sorted(self._fleet.resident.values(), key=lambda r: r.last_used, reverse=True)
        loaded = []
        for r in residents:
            hosts = list(r.hosts)
            if not hosts:
                continue
            loaded.append(
                LoadedModel(
                    name=r.record.name,
                    digest=r.record.digest,
                    node_id=hosts[0].node.node_id,
                    size_bytes=r.record.size_bytes,
                    loaded_at=_utc(r.loaded_at),
                    last_used_at=_utc(r.last_used),
                    expires_at=None if r.expires_at is None else _utc(r.expires_at),
                    gpu=hosts[0].node.gpu,
                    queue_depth=await busy(hosts),
                    replicas=len(hosts),
                    nodes=tuple(host.node.node_id for host in hosts),
                )
            )
        return loaded

    async def close(self) -> None:
        """Unload everything, draining hosts too."""
        for name in list(self._fleet.resident):
            await self.unload(name)
        draining, self._fleet.draining = self._fleet.draining, []
        for host in draining:
            await self._fleet.stop(host, "closed")

    def _use(self, resident: Resident[H], keep_alive_s: float | None) -> None:
        now = self._fleet.clock()
        default = self._fleet.settings.keep_alive_s
        keep = default if keep_alive_s is None else keep_alive_s
        if resident.record.warm:
            keep = -1.0
        resident.last_used = now
        resident.expires_at = None if keep < 0 else now + keep

    async def _load(self, name: str) -> Resident[H]:
        record = self._catalog.get(name)
        async with self._fleet.lock:
            node = await self._fleet.room_for(record, for_load=True)
            handle = await self._fleet.launcher.start(record, node)
            now = self._fleet.clock()
            host = Host(name, handle, node, record.size_bytes, now)
            resident = Resident(record, [host], now, now, None)
            self._fleet.resident[name] = resident
        log.info("loaded %s on %s (%d bytes)", name, node.node_id, record.size_bytes)
        return resident


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)
