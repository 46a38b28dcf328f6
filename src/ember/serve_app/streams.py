"""How many streams each principal may hold open: job events (SSE and WebSocket) and streamed
model answers (OpenAI and Ollama).

A route takes a :class:`StreamSlot` before it starts any work for the stream and gives it
back when the stream ends however it ends: :class:`HeldStreamingResponse` gives it back once
the response is done (finished, failed or the client gone), a WebSocket route in ``finally``.
Counts live in the process (each ingress replica has its own).
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from ember.errors import TooManyStreams

__all__ = ["HeldStreamingResponse", "StreamSlot", "StreamSlots"]


class StreamSlot:
    """One open stream of ``principal``; :meth:`release` is idempotent."""

    def __init__(self, slots: StreamSlots | None, principal: str) -> None:
        self._slots = slots
        self.principal = principal

    def release(self) -> None:
        """Give the slot back (again: nothing happens)."""
        slots, self._slots = self._slots, None
        if slots is not None:
            slots._give_back(self.principal)


class StreamSlots:
    """At most ``per_principal`` open streams per principal; ``None``: no limit. Thread-safe.

    :param per_principal: ``server.max_streams_per_principal``.
    """

    def __init__(self, per_principal: int | None) -> None:
        if per_principal is not None and per_principal < 1:
            raise ValueError("per_principal must be at least 1")
        self.per_principal = per_principal
        self._open: Counter[str] = Counter()
        self._lock = threading.Lock()

    def open(self, principal: str) -> int:
        """Streams ``principal`` holds now."""
        with self._lock:
            return self._open[principal]

    def take(self, principal: str) -> StreamSlot:
        """A slot for one more stream of ``principal``.

        :raises TooManyStreams: it holds ``per_principal`` already.
        """
        with self._lock:
            held = self._open[principal]
            if self.per_principal is not None and held >= self.per_principal:
                raise TooManyStreams(
                    f"{principal!r} has {held} streams open, the most allowed "
                    "(server.max_streams_per_principal); close one first",
                    extra={"limit": self.per_principal},
                )
            self._open[principal] = held + 1
        return StreamSlot(self, principal)

    def _give_back(self, principal: str) -> None:
        with self._lock:
            self._open[principal] -= 1
            if self._open[principal] <= 0:
                del self._open[principal]


class HeldStreamingResponse(StreamingResponse):
    """A streaming response that releases ``slot`` once it is done, however it ends."""

    def __init__(self, content: Any, *, slot: StreamSlot, **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self.slot = slot

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.slot.release()
