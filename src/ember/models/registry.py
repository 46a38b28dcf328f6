"""ModelRegistry: which local models are loaded, on how many hosts, on which nodes, until when.

Models load on demand (:meth:`ModelRegistry.acquire`) where :func:`ember.placement.room.place`
finds room: a GPU node with room and a free GPU first, then the node that needs the fewest
evictions, then the one with the most free room. When no node has room for the next one,
hosts of idle models are closed least-recently-used first (a model with calls in flight never
loses a host to another); when even that is not enough,
:class:`~ember.errors.ModelCapacityExceeded` is raised and nothing is unloaded. Each use sets
the model's expiry from its ``keep_alive`` as Ollama does: ``0`` unloads it after the call,
a negative value keeps it until it is evicted for room, ``None`` is ``models.keep_alive_s``
(for a ``warm`` model: until evicted).

:meth:`sweep` unloads expired models and forgets hosts that died. ``warm`` models are loaded by
:meth:`warm` at start, and :meth:`ready` reports whether they all are. A model may have several
hosts: :meth:`rescale` grows and shrinks them with the calls on them, and room is counted per
host. Nothing here imports Ray: the ``ModelRegistry`` actor is a shell, and the launcher
decides where hosts run (in this process, or as ``ModelHost`` actors).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Generic, TypeVar

from ember.config.models import ModelsConfig
from ember.errors import ModelCapacityExceeded, ProviderUnavailable
from ember.models.protocol import HostHandle, HostLauncher, ModelCatalog, Scaler
from ember.models.records import LoadedModel, ModelRecord
from ember.placement.room import NodeCapacity, Slot, place

__all__ = ["HostDemand", "ModelRegistry", "NodeCapacity"]

log = logging.getLogger(__name__)

H = TypeVar("H", bound=HostHandle)


@dataclass(frozen=True)
class HostDemand:
    """The hosts a registry holds (starting and draining ones too) and those it wants but
    could not start (no node had room, or the start failed); one entry per host, ``True`` for
    a GPU host."""

    placed: tuple[bool, ...]
    unplaced: tuple[bool, ...]


@dataclass(eq=False)
class _Host(Generic[H]):
    """One host of a model: resident, draining (``since`` it left routing) or starting
    (``handle`` is ``None`` until it has loaded)."""

    name: str
    handle: H | None
    node: NodeCapacity
    size_bytes: int
    loaded_at: float
    since: float = 0.0


@dataclass(eq=False)
class _Resident(Generic[H]):
    record: ModelRecord
    hosts: list[_Host[H]]
    loaded_at: float
    last_used: float
    expires_at: float | None


async def _calls(host: _Host[H]) -> int | None:
    """The calls on ``host``; ``None`` when it is gone (died, or closed elsewhere)."""
    if host.handle is None:
        return 0
    try:
        return await host.handle.busy()
    except ProviderUnavailable:
        return None


async def _busy(hosts: list[_Host[H]]) -> int:
    return sum([await _calls(host) or 0 for host in hosts])


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
        self._blocked_until: dict[str, float] = {}
        self._unmet: dict[str, int] = {}
        self._resident: dict[str, _Resident[H]] = {}
        self._draining: list[_Host[H]] = []
        self._starting: list[_Host[H]] = []
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
        resident = self._resident.get(name)
        if resident is not None:
            self._use(resident, keep_alive_s)

    async def unload(self, name: str) -> bool:
        """Unload ``name`` (every host of it) if it is resident; ``True`` when it was."""
        async with self._lock:
            resident = self._resident.pop(name, None)
            if resident is not None:
                self._forget(name)
        if resident is None:
            return False
        for host in list(resident.hosts):
            await self._stop(host, "unloaded")
        return True

    async def sweep(self) -> list[str]:
        """Forget hosts that died, then unload every idle model whose keep-alive has passed;
        the names unloaded."""
        await self._prune()
        now = self._clock()
        expired = [
            r
            for r in list(self._resident.values())
            if r.expires_at is not None and r.expires_at <= now and await _busy(r.hosts) == 0
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
        await self._prune()
        await self._close_drained()
        if self._scaler is not None:
            for name, resident in list(self._resident.items()):
                if self._resident.get(name) is resident:
                    await self._size(name, resident, self._scaler)
        return {name: len(r.hosts) for name, r in self._resident.items()}

    def host_demand(self) -> HostDemand:
        """The hosts held now and those :meth:`rescale` wanted but could not start (a GPU
        host wanted for a model whose first host is on a GPU node)."""
        held = [h for r in self._resident.values() for h in r.hosts]
        held += self._draining + self._starting
        unplaced = [
            self._resident[name].hosts[0].node.gpu
            for name, short in self._unmet.items()
            if name in self._resident and self._resident[name].hosts
            for _ in range(short)
        ]
        return HostDemand(tuple(h.node.gpu for h in held), tuple(unplaced))

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
                    queue_depth=await _busy(hosts),
                    replicas=len(hosts),
                    nodes=tuple(host.node.node_id for host in hosts),
                )
            )
        return loaded

    async def close(self) -> None:
        """Unload everything, draining hosts too."""
        for name in list(self._resident):
            await self.unload(name)
        draining, self._draining = self._draining, []
        for host in draining:
            await self._stop(host, "closed")

    def _use(self, resident: _Resident[H], keep_alive_s: float | None) -> None:
        now = self._clock()
        default = -1.0 if resident.record.warm else self._settings.keep_alive_s
        keep = default if keep_alive_s is None else keep_alive_s
        resident.last_used = now
        resident.expires_at = None if keep < 0 else now + keep

    def _forget(self, name: str) -> None:
        self._scalers.pop(name, None)
        self._unmet.pop(name, None)
        self._blocked_until.pop(name, None)

    async def _load(self, name: str) -> _Resident[H]:
        record = self._catalog.get(name)
        async with self._lock:
            node = await self._room_for(record, for_load=True)
            handle = await self._launcher.start(record, node)
            now = self._clock()
            host = _Host(name, handle, node, record.size_bytes, now)
            resident = _Resident(record, [host], now, now, None)
            self._resident[name] = resident
        log.info("loaded %s on %s (%d bytes)", name, node.node_id, record.size_bytes)
        return resident

    async def _size(self, name: str, resident: _Resident[H], make: Callable[[str], Scaler]) -> None:
        scaler = self._scalers.get(name)
        if scaler is None:
            scaler = self._scalers[name] = make(name)
        current = len(resident.hosts)
        wanted = scaler.desired(current, await _busy(resident.hosts))
        if wanted > current and self._clock() >= self._blocked_until.get(name, 0):
            for _ in range(wanted - current):
                if not await self._grow(resident):
                    break
        elif wanted < current:
            await self._shrink(resident, current - wanted)
        short = wanted - len(resident.hosts)
        if short > 0 and self._resident.get(name) is resident:
            self._unmet[name] = short
        else:
            self._unmet.pop(name, None)

    async def _grow(self, resident: _Resident[H]) -> bool:
        record = resident.record
        name = record.name
        async with self._lock:
            if self._resident.get(name) is not resident or not resident.hosts:
                return False
            back = next((h for h in self._draining if h.name == name), None)
            if back is not None:
                self._draining.remove(back)
                resident.hosts.append(back)
                log.info("%s: a draining host on %s takes calls again", name, back.node.node_id)
                return True
            hosting = {host.node.node_id for host in resident.hosts}
            try:
                node = await self._room_for(
                    record, spread_from=hosting, gpu_only=resident.hosts[0].node.gpu
                )
            except ModelCapacityExceeded as exc:
                self._refuse(name, exc)
                return False
            starting: _Host[H] = _Host(name, None, node, record.size_bytes, self._clock())
            self._starting.append(starting)
        try:
            handle = await self._launcher.start(record, node)
        except Exception as exc:
            self._starting.remove(starting)
            self._refuse(name, exc)
            return False
        async with self._lock:
            self._starting.remove(starting)
            starting.handle = handle
            stale = self._resident.get(name) is not resident
            if not stale:
                resident.hosts.append(starting)
        if stale:
            await self._stop(starting, "closed (its model was unloaded meanwhile)")
            return False
        log.info("added a host of %s on %s (%d now)", name, node.node_id, len(resident.hosts))
        return True

    def _refuse(self, name: str, exc: Exception) -> None:
        self._blocked_until[name] = self._clock() + self._settings.scale_cooldown_s
        log.warning("cannot add a host of %s: %s", name, exc)

    async def _shrink(self, resident: _Resident[H], count: int) -> None:
        async with self._lock:
            if self._resident.get(resident.record.name) is not resident:
                return
            ranked = [
                (await _calls(h) or 0, h.node.gpu, -h.loaded_at, -i, h)
                for i, h in enumerate(resident.hosts)
            ]
            ranked.sort(key=lambda item: item[:4])
            now = self._clock()
            leaving = [item[-1] for item in ranked[: min(count, len(ranked) - 1)]]
            for host in leaving:
                resident.hosts.remove(host)
                host.since = now
                self._draining.append(host)
        log.info("%s: %d host(s) draining", resident.record.name, len(leaving))

    async def _close_drained(self) -> None:
        async with self._lock:
            done = [h for h in self._draining if await self._drained(h)]
            for host in done:
                self._draining.remove(host)
        for host in done:
            await self._stop(host, "drained")

    async def _drained(self, host: _Host[H]) -> bool:
        """Out of routing for ``2 * models.route_refresh_s`` and idle (or gone)."""
        if self._clock() - host.since < 2 * self._settings.route_refresh_s:
            return False
        return not await _calls(host)

    async def _prune(self) -> None:
        """Drop hosts that died (their handle says they are gone); a model left without a
        host stops being resident, so its next call loads it again."""
        gone: list[_Host[H]] = []
        async with self._lock:
            for name, resident in list(self._resident.items()):
                dead = [h for h in resident.hosts if await _calls(h) is None]
                for host in dead:
                    resident.hosts.remove(host)
                if not resident.hosts:
                    self._resident.pop(name, None)
                    self._forget(name)
                gone += dead
            dead = [h for h in self._draining if await _calls(h) is None]
            for host in dead:
                self._draining.remove(host)
            gone += dead
        for host in gone:
            await self._stop(host, "forgot (the host is gone)")

    async def _room_for(
        self,
        record: ModelRecord,
        *,
        for_load: bool = False,
        spread_from: set[str] | None = None,
        gpu_only: bool = False,
    ) -> NodeCapacity:
        """A node for a host of ``record``, after closing the hosts that make room there. A
        load may close hosts of idle models; a host added by :meth:`rescale` only idle
        draining hosts past their grace. Called with the lock held."""
        nodes = await self._launcher.nodes()
        if not nodes:
            raise ModelCapacityExceeded("no node can host models")
        slots: list[Slot[_Host[H]]] = []
        for name, resident in self._resident.items():
            idle = for_load and name != record.name and await _busy(resident.hosts) == 0
            slots += [self._slot(h, resident.last_used, idle) for h in resident.hosts]
        for host in self._draining:
            slots.append(self._slot(host, float("-inf"), await self._drained(host)))
        slots += [self._slot(host, float("inf"), False) for host in self._starting]
        placement = place(
            record.size_bytes,
            nodes,
            slots,
            host_gpus=self._settings.host_num_gpus,
            spread_from=spread_from or (),
            gpu_only=gpu_only,
        )
        if placement is None:
            where = "no GPU node" if gpu_only else "no node"
            raise ModelCapacityExceeded(
                f"{record.name} needs {record.size_bytes} bytes; {where} has room even after "
                "evicting idle models"
            )
        for slot in placement.close:
            self._evict(slot.ref)
            await self._stop(slot.ref, "evicted for room")
        return placement.node

    def _slot(self, host: _Host[H], last_used: float, closable: bool) -> Slot[_Host[H]]:
        gpus = self._settings.host_num_gpus if host.node.gpu else 0.0
        return Slot(host.node.node_id, host.size_bytes, gpus, last_used, closable, host)

    def _evict(self, host: _Host[H]) -> None:
        if host in self._draining:
            self._draining.remove(host)
            return
        resident = self._resident.get(host.name)
        if resident is None:
            return
        resident.hosts.remove(host)
        if not resident.hosts:
            self._resident.pop(host.name, None)
            self._forget(host.name)

    async def _stop(self, host: _Host[H], why: str) -> None:
        if host.handle is not None:
            try:
                await host.handle.close()
            except Exception as exc:
                log.warning("closing %s failed: %s", host.name, exc)
        log.info("%s %s from %s", why, host.name, host.node.node_id)


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)
