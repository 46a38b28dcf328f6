"""Fleet: the hosts a model registry holds, by model, and the room they take on each node.

A host is resident (it takes calls), draining (out of routing, closed once idle past its grace)
or starting (placed, still loading). Every change to which hosts exist is made holding
:attr:`Fleet.lock`, except that a host is not started under it. When a model loses its last
host it stops being resident and :attr:`Fleet.on_forget` is told its name, so that what was
kept per model (how it scales) goes with it. Nothing here imports Ray: the launcher decides
where hosts run. It logs as ``ember.models.registry``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from ember.config.models import ModelsConfig
from ember.errors import ModelCapacityExceeded, ProviderUnavailable
from ember.models.protocol import HostHandle, HostLauncher
from ember.models.records import ModelRecord
from ember.placement.room import NodeCapacity, Slot, place

__all__ = ["Fleet", "Host", "HostDemand", "Resident", "busy", "calls"]

log = logging.getLogger("ember.models.registry")

H = TypeVar("H", bound=HostHandle)


@dataclass(frozen=True)
class HostDemand:
    """The hosts a registry holds (starting and draining ones too) and those it wants but
    could not start (no node had room, or the start failed); one entry per host, ``True`` for
    a GPU host."""

    placed: tuple[bool, ...]
    unplaced: tuple[bool, ...]


@dataclass(eq=False)
class Host(Generic[H]):
    """One host of a model: resident, draining (``since`` it left routing) or starting
    (``handle`` is ``None`` until it has loaded)."""

    name: str
    handle: H | None
    node: NodeCapacity
    size_bytes: int
    loaded_at: float
    since: float = 0.0


@dataclass(eq=False)
class Resident(Generic[H]):
    """A model that takes calls, on the ``hosts`` that route them."""

    record: ModelRecord
    hosts: list[Host[H]]
    loaded_at: float
    last_used: float
    expires_at: float | None


async def calls(host: Host[H]) -> int | None:
    """The calls on ``host``; ``None`` when it is gone (died, or closed elsewhere)."""
    if host.handle is None:
        return 0
    try:
        return await host.handle.busy()
    except ProviderUnavailable:
        return None


async def busy(hosts: list[Host[H]]) -> int:
    """The calls on ``hosts`` together (a gone host counts none)."""
    return sum([await calls(host) or 0 for host in hosts])


def _ignore(name: str) -> None:
    return None


class Fleet(Generic[H]):
    """The resident models and the draining and starting hosts, started and closed with
    ``launcher``; ``clock`` is the time every expiry and grace is counted in."""

    def __init__(
        self,
        launcher: HostLauncher[H],
        settings: ModelsConfig,
        clock: Callable[[], float],
        *,
        on_forget: Callable[[str], None] = _ignore,
    ) -> None:
        self.launcher = launcher
        self.settings = settings
        self.clock = clock
        self.on_forget = on_forget
        self.resident: dict[str, Resident[H]] = {}
        self.draining: list[Host[H]] = []
        self.starting: list[Host[H]] = []
        self.lock = asyncio.Lock()

    def drop(self, name: str) -> Resident[H] | None:
        """Stop ``name`` being resident (its hosts are not closed) and tell
        :attr:`on_forget`; what was resident, or ``None``."""
        resident = self.resident.pop(name, None)
        if resident is not None:
            self.on_forget(name)
        return resident

    async def room_for(
        self,
        record: ModelRecord,
        *,
        for_load: bool = False,
        spread_from: set[str] | None = None,
        gpu_only: bool = False,
    ) -> NodeCapacity:
        """A node for a host of ``record``, after closing the hosts that make room there. A
        load may close hosts of idle models; a host added by a rescale only idle draining
        hosts past their grace. Called with the lock held.

        :raises ModelCapacityExceeded: no node has room, even after those closures.
        """
        nodes = await self.launcher.nodes()
        if not nodes:
            raise ModelCapacityExceeded("no node can host models")
        slots: list[Slot[Host[H]]] = []
        for name, resident in self.resident.items():
            idle = for_load and name != record.name and await busy(resident.hosts) == 0
            slots += [self.slot(h, resident.last_used, idle) for h in resident.hosts]
        for host in self.draining:
            slots.append(self.slot(host, float("-inf"), await self.drained(host)))
        slots += [self.slot(host, float("inf"), False) for host in self.starting]
        placement = place(
            record.size_bytes,
            nodes,
            slots,
            host_gpus=self.settings.host_num_gpus,
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
            self.evict(slot.ref)
            await self.stop(slot.ref, "evicted for room")
        return placement.node

    def slot(self, host: Host[H], last_used: float, closable: bool) -> Slot[Host[H]]:
        """The room ``host`` takes, as :func:`~ember.placement.room.place` counts it."""
        gpus = self.settings.host_num_gpus if host.node.gpu else 0.0
        return Slot(host.node.node_id, host.size_bytes, gpus, last_used, closable, host)

    def evict(self, host: Host[H]) -> None:
        """Take ``host`` out of the fleet (it is not closed); its model stops being resident
        when it was the last one."""
        if host in self.draining:
            self.draining.remove(host)
            return
        resident = self.resident.get(host.name)
        if resident is None:
            return
        resident.hosts.remove(host)
        if not resident.hosts:
            self.drop(host.name)

    async def stop(self, host: Host[H], why: str) -> None:
        """Close ``host`` and log ``why``; a close that fails is logged, not raised."""
        if host.handle is not None:
            try:
                await host.handle.close()
            except Exception as exc:
                log.warning("closing %s failed: %s", host.name, exc)
        log.info("%s %s from %s", why, host.name, host.node.node_id)

    async def prune(self) -> None:
        """Drop hosts that died (their handle says they are gone); a model left without a
        host stops being resident, so its next call loads it again."""
        gone: list[Host[H]] = []
        async with self.lock:
            for name, resident in list(self.resident.items()):
                dead = [h for h in resident.hosts if await calls(h) is None]
                for host in dead:
                    resident.hosts.remove(host)
                if not resident.hosts:
                    self.drop(name)
                gone += dead
            dead = [h for h in self.draining if await calls(h) is None]
            for host in dead:
                self.draining.remove(host)
            gone += dead
        for host in gone:
            await self.stop(host, "forgot (the host is gone)")

    async def drained(self, host: Host[H]) -> bool:
        """Out of routing for ``2 * models.route_refresh_s`` and idle (or gone)."""
        if self.clock() - host.since < 2 * self.settings.route_refresh_s:
            return False
        return not await calls(host)
