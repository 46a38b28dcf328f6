"""ReplicaSet: one :class:`~ember.models.protocol.HostHandle` over several hosts of the same
model, routing each call to the host with the fewest calls in flight through this set.

Each caller keeps its own set (a Serve replica, a job worker), so the count is the caller's
own view of the load: cheap, no hop to ask a host how busy it is, and with every caller
spreading its own calls the hosts stay even. Ties go round robin. :meth:`ReplicaSet.update`
swaps in the registry's current hosts and keeps the counts of those that stay.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Hashable, Sequence
from typing import Generic, TypeVar

from ember.chat import ChatMessage, Completion, Delta, GenerationOptions
from ember.models.protocol import HostHandle

__all__ = ["ReplicaSet"]

H = TypeVar("H", bound=HostHandle)


class ReplicaSet(Generic[H]):
    """Routes calls over ``hosts``; ``key`` tells two handles of one host apart from two hosts
    (``id`` by default; a handle that is copied across processes needs a stable key)."""

    def __init__(self, hosts: Sequence[H], key: Callable[[H], Hashable] = id) -> None:
        self._key = key
        self._hosts: list[H] = []
        self._in_flight: dict[Hashable, int] = {}
        self._turn = 0
        self.update(hosts)

    @property
    def hosts(self) -> list[H]:
        return list(self._hosts)

    def in_flight(self) -> list[int]:
        """Calls in flight through this set, per host, in the order of :attr:`hosts`."""
        return [self._in_flight[self._key(host)] for host in self._hosts]

    def update(self, hosts: Sequence[H]) -> None:
        """Route over ``hosts`` from now on; a call in flight on a host that left finishes
        there.

        :raises ValueError: ``hosts`` is empty.
        """
        if not hosts:
            raise ValueError("a replica set needs at least one host")
        self._hosts = list(hosts)
        self._in_flight = {self._key(h): self._in_flight.get(self._key(h), 0) for h in hosts}

    def pick(self) -> H:
        """The host the next call goes to: fewest calls in flight, ties in turn."""
        count = len(self._hosts)
        start = self._turn % count
        self._turn += 1
        order = [self._hosts[(start + i) % count] for i in range(count)]
        return min(order, key=lambda host: self._in_flight[self._key(host)])

    async def complete(self, prompt: str, options: GenerationOptions) -> Completion:
        host = self.pick()
        with self._counted(host):
            return await host.complete(prompt, options)

    def stream(self, prompt: str, options: GenerationOptions) -> AsyncIterator[Delta]:
        host = self.pick()
        return self._streamed(host, host.stream(prompt, options))

    async def chat(self, messages: Sequence[ChatMessage], options: GenerationOptions) -> Completion:
        host = self.pick()
        with self._counted(host):
            return await host.chat(messages, options)

    def stream_chat(
        self, messages: Sequence[ChatMessage], options: GenerationOptions
    ) -> AsyncIterator[Delta]:
        host = self.pick()
        return self._streamed(host, host.stream_chat(messages, options))

    async def busy(self) -> int:
        """Calls running or waiting on all the hosts (each one asked)."""
        counts = await asyncio.gather(*(host.busy() for host in self._hosts))
        return sum(counts)

    async def close(self) -> None:
        """Close every host (the registry does this; a caller only routes)."""
        for host in self._hosts:
            await host.close()

    def _counted(self, host: H) -> _Count:
        return _Count(self._in_flight, self._key(host))

    async def _streamed(self, host: H, deltas: AsyncIterator[Delta]) -> AsyncIterator[Delta]:
        with self._counted(host):
            try:
                async for delta in deltas:
                    yield delta
            finally:
                aclose = getattr(deltas, "aclose", None)
                if aclose is not None:
                    await aclose()


class _Count:
    """Counts one call on a host while it runs. A host that :meth:`ReplicaSet.update` dropped
    is not counted; one dropped and added back meanwhile never goes below zero."""

    def __init__(self, counts: dict[Hashable, int], key: Hashable) -> None:
        self._counts = counts
        self._key = key

    def __enter__(self) -> None:
        if self._key in self._counts:
            self._counts[self._key] += 1

    def __exit__(self, *exc: object) -> None:
        if self._key in self._counts:
            self._counts[self._key] = max(0, self._counts[self._key] - 1)
