"""Usage rows written off the request path: buffered, then stored in one transaction per batch.

A call's usage entry is added without waiting (:meth:`UsageWriter.add`); a background task on
the adder's event loop writes what has gathered every ``flush_interval_s`` seconds, in a
thread. Budgets therefore see a call's usage at most one interval late. A batch that fails to
write is logged and kept for the next flush (the buffer is bounded by ``max_pending``; past it
entries are dropped and counted in :attr:`UsageWriter.dropped`, which ``/metrics`` reports as
``ember_usage_dropped_total``). :meth:`aclose` writes what is left.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque

from ember.storage.protocol import UsageLog
from ember.storage.records import UsageEntry

__all__ = ["UsageWriter"]

log = logging.getLogger(__name__)


class UsageWriter:
    """Buffers usage entries for ``usage`` and writes them in batches."""

    def __init__(
        self, usage: UsageLog, *, flush_interval_s: float = 0.05, max_pending: int = 100_000
    ) -> None:
        self._usage = usage
        self._interval = flush_interval_s
        self._pending: deque[UsageEntry] = deque(maxlen=max_pending)
        self._lock = threading.Lock()
        self._flusher: asyncio.Task[None] | None = None
        self.dropped = 0
        """Entries lost because the buffer was full while the database refused writes."""

    def add(self, entry: UsageEntry) -> None:
        """Queue ``entry``; called on an event loop, it never blocks."""
        with self._lock:
            if len(self._pending) == self._pending.maxlen:
                self.dropped += 1
            self._pending.append(entry)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._run())

    async def flush(self) -> int:
        """Write everything queued now; the number of entries written."""
        with self._lock:
            batch = list(self._pending)
            self._pending.clear()
        if not batch:
            return 0
        try:
            await asyncio.to_thread(self._usage.record_many, batch)
        except Exception:
            log.exception("could not write %d usage entries; keeping them", len(batch))
            with self._lock:
                room = (self._pending.maxlen or 0) - len(self._pending)
                self.dropped += max(0, len(batch) - room)
                self._pending.extendleft(reversed(batch))
            return 0
        return len(batch)

    async def aclose(self) -> None:
        """Stop the background task and write what is left."""
        if self._flusher is not None and not self._flusher.done():
            self._flusher.cancel()
        await self.flush()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            if not await self.flush() and not self._pending:
                return
