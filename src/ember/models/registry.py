"""ModelRegistry: which local models are loaded, on which node, and until when.

Models load on demand (:meth:`ModelRegistry.acquire`) on a GPU node when one has room, then
on the node that needs the fewest evictions, then on the one with the most free room.
When no node has room for the next one, idle models are evicted least-recently-used first
(a model with calls in flight is never evicted); when even that is not enough,
:class:`~ember.errors.ModelCapacityExceeded` is raised and nothing is unloaded. Each use sets
the model's expiry from its ``keep_alive`` as Ollama does: ``0`` unloads it after the call,
a negative value keeps it until it is evicted for room, ``None`` is ``models.keep_alive_s``
(for a ``warm`` model: until evicted).
:meth:`sweep` unloads expired models. ``warm`` models are loaded by :meth:`warm` at start, and
:meth:`ready` reports whether they all are. A model may have several hosts: :meth:`rescale`
grows and shrinks them with the calls waiting on them, and room is counted per host.
Nothing here imports Ray: the ``ModelRegistry`` actor is a shell, and the launcher decides
where hosts run (in this process, or as ``ModelHost`` actors).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Generic, Protocol, TypeVar

from ember.config.models import ModelsConfig
from ember.errors import ModelCapacityExceeded
from ember.models.protocol import HostHandle, ModelCatalog
from ember.models.records import LoadedModel, ModelRecord

__all__ = ["HostDemand", "HostLauncher", "ModelRegistry", "NodeCapacity", "Scaler"]

log = logging.getLogger(__name__)

H = TypeVar("H", bound=HostHandle)
H_co = TypeVar("H_co", bound=HostHandle, covariant=True)


@dataclass(frozen=True)
class NodeCapacity:
    """A node that can host models: bytes of models it may hold, and whether it has a GPU."""

    node_id: str
    capacity_bytes: int
    gpu: bool = False


class HostLauncher(Protocol[H_co]):
    """Starts and stops hosts; the registry decides which and where."""

    async def nodes(self) -> list[NodeCapacity]:
        """The nodes that may host models now, with their room."""
        ...

    async def start(self, record: ModelRecord, node: NodeCapacity) -> H_co:
        """A host on ``node`` with ``record`` loaded (digest verified).

        :raises ModelDigestMismatch: the file is not what was pinned.
        """
        ...


@dataclass(frozen=True)
class HostDemand:
    """The hosts a registry holds (draining ones too) and those it wants but could not start
    (no node had room, or the start failed); one entry per host, ``True`` for a GPU host."""

    placed: tuple[bool, ...]
    unplaced: tuple[bool, ...]


class Scaler(Protocol):
    """How many hosts one model should have (:class:`ember.cluster.scaling.ScalingPolicy`)."""

    def desired(self, current: int, demand: int) -> int:
        """The host count for ``current`` hosts with ``demand`` calls running or waiting."""
        ...


@dataclass
class _Replica(Generic[H]):
    host: H
    node: NodeCapacity
    loaded_at: float
    size_bytes: int


@dataclass
class _Resident(Generic[H]):
    record: ModelRecord
    replicas: list[_Replica[H]]
    loaded_at: float
    last_used: float
    expires_at: float | None

    async def busy(self) -> int:
        return sum([await replica.host.busy() for replica in self.replicas])


@dataclass
class _Draining(Generic[H]):
    name: str
    replica: _Replica[H]
    since: float


@dataclass
class _Slot(Generic[H]):
    """A replica holding room on a node, and whether it may be closed to make room."""

    owner: _Resident[H] | _Draining[H]
    replica: _Replica[H]
    last_used: float
    idle: bool


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
        self._launcher = launcher
        self._settings = settings
        self._clock = clock
        self._scaler = scaler
        self._scalers: dict[str, Scaler] = {}
        self._scale_blocked_until: dict[str, float] = {}
        self._unmet: dict[str, int] = {}
        self._resident: dict[str, _Resident[H]] = {}
        self._draining: list[_Draining[H]] = []
        self._loading: dict[str, asyncio.Task[_Resident[H]]] = {}
        self._lock = asyncio.Lock()
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
        busy = [await host.busy() for host in hosts]
        return hosts[busy.index(min(busy))]

    async def replicas(self, name: str, keep_alive_s: float | None = None) -> list[H]:
        """Every host of ``name`` that takes calls now (loading it first); marks it used.
        Raises as :meth:`acquire`."""
        resident = self._resident.get(name)
        if resident is None:
            task = self._loading.get(name)
            if task is None:
                task = asyncio.create_task(self._load(name))
                self._loading[name] = task
                task.add_done_callback(lambda _: self._loading.pop(name, None))
            resident = await asyncio.shield(task)
        self._use(resident, keep_alive_s)
        return [replica.host for replica in resident.replicas]

    def touch(self, name: str, keep_alive_s: float | None = None) -> None:
        """Mark a resident model used now (a call went to its host directly)."""
        resident = self._resident.get(name)
        if resident is not None:
            self._use(resident, keep_alive_s)

    async def unload(self, name: str) -> bool:
        """Unload ``name`` (every host of it) if it is resident; ``True`` when it was."""
        async with self._lock:
            resident = self._resident.pop(name, None)
        if resident is None:
            return False
        self._scalers.pop(name, None)
        self._unmet.pop(name, None)
        for replica in resident.replicas:
            await self._stop(name, replica, "unloaded")
        return True

    async def sweep(self) -> list[str]:
        """Unload every idle model whose keep-alive has passed; their names."""
        now = self._clock()
        expired = [
            r
            for r in list(self._resident.values())
            if r.expires_at is not None and r.expires_at <= now and await r.busy() == 0
        ]
        for resident in expired:
            await self.unload(resident.record.name)
        return [r.record.name for r in expired]

    async def rescale(self) -> dict[str, int]:
        """Size each resident model's hosts to its demand, the calls running or waiting on
        them, as its :class:`Scaler` answers; the host count of each model after.

        A model grows one host at a time, spread to nodes that do not host it yet when they
        have room (room is made as for a load, never from the model itself). A host that
        cannot be started is logged, counted in :meth:`host_demand` until the model no longer
        wants it, and the model is not grown again for ``models.scale_cooldown_s``.

        A model shrinks by taking hosts out of routing, the least busy first (then CPU before
        GPU, newest first); each is closed once idle and ``2 * models.route_refresh_s``
        after, when no caller still routes to it.
        """
        await self._close_drained()
        if self._scaler is None:
            return {name: len(r.replicas) for name, r in self._resident.items()}
        for name, resident in list(self._resident.items()):
            scaler = self._scalers.get(name)
            if scaler is None:
                scaler = self._scalers[name] = self._scaler(name)
            current = len(resident.replicas)
            wanted = scaler.desired(current, await resident.busy())
            if wanted > current and self._clock() >= self._scale_blocked_until.get(name, 0):
                while len(resident.replicas) < wanted and await self._grow(resident):
                    pass
            elif wanted < current:
                await self._shrink(resident, current - wanted)
            short = wanted - len(resident.replicas)
            if short > 0 and self._resident.get(name) is resident:
                self._unmet[name] = short
            else:
                self._unmet.pop(name, None)
        return {name: len(r.replicas) for name, r in self._resident.items()}

    def host_demand(self) -> HostDemand:
        """The hosts held now and those :meth:`rescale` wanted but could not start (a GPU
        host wanted for a model whose first host is on a GPU node)."""
        placed = [r.node.gpu for resident in self._resident.values() for r in resident.replicas]
        placed += [drain.replica.node.gpu for drain in self._draining]
        unplaced = [
            self._resident[name].replicas[0].node.gpu
            for name, short in self._unmet.items()
            if name in self._resident
            for _ in range(short)
        ]
        return HostDemand(tuple(placed), tuple(unplaced))

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
        missing = [name for name in wanted if name not in self._resident]
        if not missing:
            return True, f"{len(wanted)} warm model(s) loaded"
        reasons = [f"{n} ({self._warm_errors.get(n, 'loading')})" for n in missing]
        return False, "not loaded: " + ", ".join(reasons)

    async def ps(self) -> list[LoadedModel]:
        """The resident models, most recently used first; ``node_id`` and ``gpu`` are those
        of the first host."""
        residents = sorted(self._resident.values(), key=lambda r: r.last_used, reverse=True)
        return [
            LoadedModel(
                name=r.record.name,
                digest=r.record.digest,
                node_id=r.replicas[0].node.node_id,
                size_bytes=r.record.size_bytes,
                loaded_at=_utc(r.loaded_at),
                last_used_at=_utc(r.last_used),
                expires_at=None if r.expires_at is None else _utc(r.expires_at),
                gpu=r.replicas[0].node.gpu,
                queue_depth=await r.busy(),
                replicas=len(r.replicas),
                nodes=tuple(replica.node.node_id for replica in r.replicas),
            )
            for r in residents
        ]

    async def close(self) -> None:
        """Unload everything, draining hosts too."""
        for name in list(self._resident):
            await self.unload(name)
        draining, self._draining = self._draining, []
        for drain in draining:
            await self._stop(drain.name, drain.replica, "closed")

    def _use(self, resident: _Resident[H], keep_alive_s: float | None) -> None:
        now = self._clock()
        default = -1.0 if resident.record.warm else self._settings.keep_alive_s
        keep = default if keep_alive_s is None else keep_alive_s
        resident.last_used = now
        resident.expires_at = None if keep < 0 else now + keep

    async def _load(self, name: str) -> _Resident[H]:
        record = self._catalog.get(name)
        async with self._lock:
            node = await self._room_for(record)
            host = await self._launcher.start(record, node)
            now = self._clock()
            replica = _Replica(host, node, now, record.size_bytes)
            resident = _Resident(record, [replica], now, now, None)
            self._resident[name] = resident
        log.info("loaded %s on %s (%d bytes)", name, node.node_id, record.size_bytes)
        return resident

    async def _grow(self, resident: _Resident[H]) -> bool:
        name = resident.record.name
        async with self._lock:
            if self._resident.get(name) is not resident:
                return False
            hosting = {replica.node.node_id for replica in resident.replicas}
            try:
                node = await self._room_for(resident.record, spread_from=hosting)
                host = await self._launcher.start(resident.record, node)
            except Exception as exc:
                self._scale_blocked_until[name] = self._clock() + self._settings.scale_cooldown_s
                log.warning("cannot add a host of %s: %s", name, exc)
                return False
            replica = _Replica(host, node, self._clock(), resident.record.size_bytes)
            resident.replicas.append(replica)
        log.info("added a host of %s on %s (%d now)", name, node.node_id, len(resident.replicas))
        return True

    async def _shrink(self, resident: _Resident[H], count: int) -> None:
        async with self._lock:
            ranked = [
                (await r.host.busy(), r.node.gpu, -r.loaded_at, -i, r)
                for i, r in enumerate(resident.replicas)
            ]
            ranked.sort(key=lambda item: item[:4])
            now = self._clock()
            for *_, replica in ranked[: min(count, len(ranked) - 1)]:
                resident.replicas.remove(replica)
                self._draining.append(_Draining(resident.record.name, replica, now))
        log.info("%s: %d host(s) draining", resident.record.name, count)

    async def _close_drained(self) -> None:
        grace = 2 * self._settings.route_refresh_s
        now = self._clock()
        async with self._lock:
            done = [
                d
                for d in self._draining
                if now - d.since >= grace and await d.replica.host.busy() == 0
            ]
            for drain in done:
                self._draining.remove(drain)
        for drain in done:
            await self._stop(drain.name, drain.replica, "drained")

    async def _slots(self, exclude: str) -> list[_Slot[H]]:
        slots: list[_Slot[H]] = []
        for name, resident in self._resident.items():
            idle = name != exclude and await resident.busy() == 0
            slots += [_Slot(resident, r, resident.last_used, idle) for r in resident.replicas]
        for drain in self._draining:
            idle = await drain.replica.host.busy() == 0
            slots.append(_Slot(drain, drain.replica, -math.inf, idle))
        return slots

    async def _room_for(
        self, record: ModelRecord, spread_from: frozenset[str] | set[str] = frozenset()
    ) -> NodeCapacity:
        nodes = await self._launcher.nodes()
        if not nodes:
            raise ModelCapacityExceeded("no node can host models")
        slots = await self._slots(exclude=record.name)
        evictions: dict[str, list[_Slot[H]]] = {}
        best: tuple[tuple[bool, bool, int, int], NodeCapacity] | None = None
        for node in nodes:
            here = [s for s in slots if s.replica.node.node_id == node.node_id]
            free = node.capacity_bytes - sum(s.replica.size_bytes for s in here)
            victims: list[_Slot[H]] = []
            for slot in sorted(here, key=lambda s: s.last_used):
                if free >= record.size_bytes:
                    break
                if slot.idle:
                    victims.append(slot)
                    free += slot.replica.size_bytes
            rank = (node.node_id in spread_from, not node.gpu, len(victims), -free)
            if free >= record.size_bytes and (best is None or rank < best[0]):
                best = (rank, node)
            evictions[node.node_id] = victims
        if best is None:
            raise ModelCapacityExceeded(
                f"{record.name} needs {record.size_bytes} bytes; no node has room even after "
                "evicting idle models"
            )
        for victim in evictions[best[1].node_id]:
            await self._evict(victim)
        return best[1]

    async def _evict(self, slot: _Slot[H]) -> None:
        owner = slot.owner
        if isinstance(owner, _Draining):
            self._draining.remove(owner)
            name = owner.name
        else:
            name = owner.record.name
            owner.replicas.remove(slot.replica)
            if not owner.replicas:
                self._resident.pop(name, None)
                self._scalers.pop(name, None)
                self._unmet.pop(name, None)
        await self._stop(name, slot.replica, "evicted for room")

    async def _stop(self, name: str, replica: _Replica[H], why: str) -> None:
        try:
            await replica.host.close()
        except Exception as exc:
            log.warning("closing %s failed: %s", name, exc)
        log.info("%s %s from %s", why, name, replica.node.node_id)


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)
