"""HostScaling: how many hosts each resident model of a :class:`~ember.models.fleet.Fleet` has.

Each model gets its own :class:`~ember.models.protocol.Scaler` the first time it is sized, and
keeps it (with its cooldown and unmet demand) while it stays resident: the fleet's
``on_forget`` must be :meth:`HostScaling.forget`. It logs as ``ember.models.registry``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Generic, TypeVar

from ember.errors import ModelCapacityExceeded
from ember.models.fleet import Fleet, Host, HostDemand, Resident, busy, calls
from ember.models.protocol import HostHandle, Scaler

__all__ = ["HostScaling"]

log = logging.getLogger("ember.models.registry")

H = TypeVar("H", bound=HostHandle)


class HostScaling(Generic[H]):
    """Grows and shrinks the hosts of ``fleet``'s models; ``scaler`` makes one
    :class:`Scaler` per model, and without it every model keeps one host."""

    def __init__(self, fleet: Fleet[H], scaler: Callable[[str], Scaler] | None) -> None:
        self._fleet = fleet
        self._scaler = scaler
        self._scalers: dict[str, Scaler] = {}
        self._blocked_until: dict[str, float] = {}
        self._unmet: dict[str, int] = {}

    async def rescale(self) -> dict[str, int]:
        """Forget dead hosts, close drained ones, then size each resident model's hosts to
        its demand as :meth:`ember.models.registry.ModelRegistry.rescale` states; the host
        count of each model after."""
        fleet = self._fleet
        await fleet.prune()
        await self._close_drained()
        if self._scaler is not None:
            for name, resident in list(fleet.resident.items()):
                if fleet.resident.get(name) is resident:
                    await self._size(name, resident, self._scaler)
        return {name: len(r.hosts) for name, r in fleet.resident.items()}

    def host_demand(self) -> HostDemand:
        """The hosts held now and those :meth:`rescale` wanted but could not start (a GPU
        host wanted for a model whose first host is on a GPU node)."""
        resident = self._fleet.resident
        held = [h for r in resident.values() for h in r.hosts]
        held += self._fleet.draining + self._fleet.starting
        unplaced = [
            resident[name].hosts[0].node.gpu
            for name, short in self._unmet.items()
            if name in resident and resident[name].hosts
            for _ in range(short)
        ]
        return HostDemand(tuple(h.node.gpu for h in held), tuple(unplaced))

    def forget(self, name: str) -> None:
        """Drop what is kept for ``name`` (it is no longer resident)."""
        self._scalers.pop(name, None)
        self._unmet.pop(name, None)
        self._blocked_until.pop(name, None)

    async def _size(self, name: str, resident: Resident[H], make: Callable[[str], Scaler]) -> None:
        scaler = self._scalers.get(name)
        if scaler is None:
            scaler = self._scalers[name] = make(name)
        current = len(resident.hosts)
        wanted = scaler.desired(current, await busy(resident.hosts))
        if wanted > current and self._fleet.clock() >= self._blocked_until.get(name, 0):
            for _ in range(wanted - current):
                if not await self._grow(resident):
                    break
        elif wanted < current:
            await self._shrink(resident, current - wanted)
        short = wanted - len(resident.hosts)
        if short > 0 and self._fleet.resident.get(name) is resident:
            self._unmet[name] = short
        else:
            self._unmet.pop(name, None)

    async def _grow(self, resident: Resident[H]) -> bool:
        fleet = self._fleet
        record = resident.record
        name = record.name
        async with fleet.lock:
            if fleet.resident.get(name) is not resident or not resident.hosts:
                return False
            back = next((h for h in fleet.draining if h.name == name), None)
            if back is not None:
                fleet.draining.remove(back)
                resident.hosts.append(back)
                log.info("%s: a draining host on %s takes calls again", name, back.node.node_id)
                return True
            hosting = {host.node.node_id for host in resident.hosts}
            try:
                node = await fleet.room_for(
                    record, spread_from=hosting, gpu_only=resident.hosts[0].node.gpu
                )
            except ModelCapacityExceeded as exc:
                self._refuse(name, exc)
                return False
            starting: Host[H] = Host(name, None, node, record.size_bytes, fleet.clock())
            fleet.starting.append(starting)
        try:
            handle = await fleet.launcher.start(record, node)
        except Exception as exc:
            fleet.starting.remove(starting)
            self._refuse(name, exc)
            return False
        async with fleet.lock:
            fleet.starting.remove(starting)
            starting.handle = handle
            stale = fleet.resident.get(name) is not resident
            if not stale:
                resident.hosts.append(starting)
        if stale:
            await fleet.stop(starting, "closed (its model was unloaded meanwhile)")
            return False
        log.info("added a host of %s on %s (%d now)", name, node.node_id, len(resident.hosts))
        return True

    def _refuse(self, name: str, exc: Exception) -> None:
        self._blocked_until[name] = self._fleet.clock() + self._fleet.settings.scale_cooldown_s
        log.warning("cannot add a host of %s: %s", name, exc)

    async def _shrink(self, resident: Resident[H], count: int) -> None:
        fleet = self._fleet
        async with fleet.lock:
            if fleet.resident.get(resident.record.name) is not resident:
                return
            ranked = [
                (await calls(h) or 0, h.node.gpu, -h.loaded_at, -i, h)
                for i, h in enumerate(resident.hosts)
            ]
            ranked.sort(key=lambda item: item[:4])
            now = fleet.clock()
            leaving = [item[-1] for item in ranked[: min(count, len(ranked) - 1)]]
            for host in leaving:
                resident.hosts.remove(host)
                host.since = now
                fleet.draining.append(host)
        log.info("%s: %d host(s) draining", resident.record.name, len(leaving))

    async def _close_drained(self) -> None:
        fleet = self._fleet
        async with fleet.lock:
            done = [h for h in fleet.draining if await fleet.drained(h)]
            for host in done:
                fleet.draining.remove(host)
        for host in done:
            await fleet.stop(host, "drained")
