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
:meth:`ready` reports whether they all are. Nothing here imports Ray: the ``ModelRegistry``
actor is a shell, and the launcher decides where hosts run (in this process, or as
``ModelHost`` actors).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Generic, Protocol, TypeVar

from ember.config.models import ModelsConfig
from ember.errors import ModelCapacityExceeded
from ember.models.protocol import HostHandle, ModelCatalog
from ember.models.records import LoadedModel, ModelRecord

__all__ = ["HostLauncher", "ModelRegistry", "NodeCapacity"]

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


@dataclass
class _Resident(Generic[H]):
    record: ModelRecord
    host: H
    node: NodeCapacity
    loaded_at: float
    last_used: float
    expires_at: float | None


class ModelRegistry(Generic[H]):
    """Loads, tracks and evicts hosted models over ``catalog`` with ``launcher``."""

    def __init__(
        self,
        catalog: ModelCatalog,
        launcher: HostLauncher[H],
        settings: ModelsConfig,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._catalog = catalog
        self._launcher = launcher
        self._settings = settings
        self._clock = clock
        self._resident: dict[str, _Resident[H]] = {}
        self._loading: dict[str, asyncio.Task[_Resident[H]]] = {}
        self._lock = asyncio.Lock()
        self._warm_errors: dict[str, str] = {}

    async def acquire(self, name: str, keep_alive_s: float | None = None) -> H:
        """The host of ``name``, loading it first when it is not resident; marks it used.

        :raises ModelNotRegistered: no model has this name.
        :raises ModelDigestMismatch: its file is not the pinned one.
        :raises ModelCapacityExceeded: no node has room, even after evicting idle models.
        """
        resident = self._resident.get(name)
        if resident is None:
            task = self._loading.get(name)
            if task is None:
                task = asyncio.create_task(self._load(name))
                self._loading[name] = task
                task.add_done_callback(lambda _: self._loading.pop(name, None))
            resident = await asyncio.shield(task)
        self._use(resident, keep_alive_s)
        return resident.host

    def touch(self, name: str, keep_alive_s: float | None = None) -> None:
        """Mark a resident model used now (a call went to its host directly)."""
        resident = self._resident.get(name)
        if resident is not None:
            self._use(resident, keep_alive_s)

    async def unload(self, name: str) -> bool:
        """Unload ``name`` if it is resident; ``True`` when it was."""
        async with self._lock:
            resident = self._resident.pop(name, None)
        if resident is None:
            return False
        await self._stop(resident, "unloaded")
        return True

    async def sweep(self) -> list[str]:
        """Unload every idle model whose keep-alive has passed; their names."""
        now = self._clock()
        expired = [
            r
            for r in self._resident.values()
            if r.expires_at is not None and r.expires_at <= now and await r.host.busy() == 0
        ]
        for resident in expired:
            await self.unload(resident.record.name)
        return [r.record.name for r in expired]

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
        """The resident models, most recently used first."""
        residents = sorted(self._resident.values(), key=lambda r: r.last_used, reverse=True)
        return [
            LoadedModel(
                name=r.record.name,
                digest=r.record.digest,
                node_id=r.node.node_id,
                size_bytes=r.record.size_bytes,
                loaded_at=_utc(r.loaded_at),
                last_used_at=_utc(r.last_used),
                expires_at=None if r.expires_at is None else _utc(r.expires_at),
                gpu=r.node.gpu,
                queue_depth=await r.host.busy(),
            )
            for r in residents
        ]

    async def close(self) -> None:
        """Unload everything."""
        for name in list(self._resident):
            await self.unload(name)

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
            resident = _Resident(record, host, node, now, now, None)
            self._resident[name] = resident
        log.info("loaded %s on %s (%d bytes)", name, node.node_id, record.size_bytes)
        return resident

    async def _room_for(self, record: ModelRecord) -> NodeCapacity:
        nodes = await self._launcher.nodes()
        if not nodes:
            raise ModelCapacityExceeded("no node can host models")
        busy = {name: await r.host.busy() for name, r in self._resident.items()}
        evictions: dict[str, list[_Resident[H]]] = {}
        best: tuple[tuple[bool, int, int], NodeCapacity] | None = None
        for node in nodes:
            here = [r for r in self._resident.values() if r.node.node_id == node.node_id]
            free = node.capacity_bytes - sum(r.record.size_bytes for r in here)
            victims: list[_Resident[H]] = []
            for r in sorted(here, key=lambda r: r.last_used):
                if free >= record.size_bytes:
                    break
                if busy[r.record.name] == 0:
                    victims.append(r)
                    free += r.record.size_bytes
            rank = (not node.gpu, len(victims), -free)
            if free >= record.size_bytes and (best is None or rank < best[0]):
                best = (rank, node)
            evictions[node.node_id] = victims
        if best is None:
            raise ModelCapacityExceeded(
                f"{record.name} needs {record.size_bytes} bytes; no node has room even after "
                "evicting idle models"
            )
        for victim in evictions[best[1].node_id]:
            self._resident.pop(victim.record.name, None)
            await self._stop(victim, "evicted for room")
        return best[1]

    async def _stop(self, resident: _Resident[H], why: str) -> None:
        try:
            await resident.host.close()
        except Exception as exc:
            log.warning("closing %s failed: %s", resident.record.name, exc)
        log.info("%s %s from %s", why, resident.record.name, resident.node.node_id)


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)
