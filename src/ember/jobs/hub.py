"""The event hub: numbers each job's events, writes them to ``job_events`` in batches, and
hands them to live readers.

Readers pull (:meth:`EventHub.wait`), so a slow reader costs nothing here: the hub keeps only
a bounded ring of recent events per job, and a reader that fell behind the ring is told to
read the table instead (``None``). Every event that left the ring is already in the table:
publishers wait for a flush whenever the unflushed backlog reaches half a ring.

It also times each attempt, from its ``running`` event to its final ``state`` event, into
:attr:`EventHub.durations` (by kind and outcome) for the metrics.

Events not yet flushed (at most ``flush_interval_s`` old) are lost if the process dies; the
job row still holds the outcome, and streams end on the row's final state. No job ever has more
than ``ring_size`` numbered events that are not stored yet (a publisher that would pass that
waits for a flush first), so a hub that takes over a job another hub may have numbered events
of (``inherited``: one that Ray restarted, or one of a new cluster over the same database)
resumes its numbering ``ring_size`` past the last stored event. The numbers in between are
never used, so no number a reader may have seen live is ever given to another event: a reader
that resumes after it misses nothing that is stored.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ember.jobs.protocol import EventStore
from ember.jobs.records import DurationHistogram, EventRecord, HubStats
from ember.storage.clock import utcnow

__all__ = ["EventHub"]

log = logging.getLogger(__name__)


@dataclass
class _Stream:
    next_seq: int
    flushed_seq: int
    """Every number up to here is stored, or never will be (skipped)."""
    ring: deque[EventRecord]
    skip: int = 0
    """Numbers to leave unused before the next event (a job another hub may have numbered)."""
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    numbering: asyncio.Lock = field(default_factory=asyncio.Lock)
    """Held by a publisher that waits for a flush before it numbers its events."""

    @property
    def unstored(self) -> int:
        """Numbers handed out that are not stored yet."""
        return self.next_seq - 1 - self.flushed_seq

    def wake(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()


_FINAL_STATES = frozenset({"succeeded", "failed", "cancelled"})


class EventHub:
    """Numbered, batched, fanned-out job events (one per cluster, in an actor)."""

    def __init__(
        self,
        store: EventStore,
        *,
        ring_size: int = 2048,
        flush_interval_s: float = 0.05,
        max_jobs: int = 1024,
        inherited: Callable[[str], bool] | None = None,
    ) -> None:
        """``inherited(job_id)`` (called in a worker thread, once per job the hub starts to
        track) says whether another hub may have numbered events of the job that were never
        stored; see the module docstring. ``None``: no other hub ever did."""
        if ring_size < 2:
            raise ValueError("ring_size must be at least 2")
        self._store = store
        self._inherited = inherited
        self._ring_size = ring_size
        self._flush_at = ring_size // 2
        self.flush_interval_s = flush_interval_s
        self._max_jobs = max_jobs
        self._streams: OrderedDict[str, _Stream] = OrderedDict()
        self._pending: list[EventRecord] = []
        self._flush_lock = asyncio.Lock()
        self._started: dict[str, tuple[str, float]] = {}
        self.durations: dict[tuple[str, str], DurationHistogram] = {}

    async def publish(self, job_id: str, type_: str, data: dict[str, Any]) -> int:
        """Number and buffer one event; returns its sequence number."""
        return (await self.publish_many(job_id, [(type_, data)]))[-1]

    async def publish_many(
        self, job_id: str, events: Sequence[tuple[str, dict[str, Any]]]
    ) -> list[int]:
        """Number and buffer several events of one job, in order (one call for a burst of
        tokens); returns their sequence numbers, consecutive. When the job's unstored events
        would pass ``ring_size``, its events are flushed first (a burst longer than that is
        numbered in parts, a flush before each, and still consecutively)."""
        events = list(events)
        while True:
            stream = await self._stream(job_id)
            if not stream.numbering.locked() and stream.unstored + len(events) <= self._ring_size:
                numbers = self._number(job_id, stream, events)
                break
            async with stream.numbering:
                if self._streams.get(job_id) is not stream:
                    continue  # evicted while this waited for the lock: track it afresh
                numbers = []
                for start in range(0, len(events), self._ring_size):
                    part = events[start : start + self._ring_size]
                    while stream.unstored + len(part) > self._ring_size:
                        await self.flush()
                    numbers += self._number(job_id, stream, part)
                break
        if len(self._pending) >= self._flush_at:
            await self.flush()
        return numbers

    def _number(
        self, job_id: str, stream: _Stream, events: Sequence[tuple[str, dict[str, Any]]]
    ) -> list[int]:
        """Number ``events`` and buffer them (no await: nothing else numbers meanwhile)."""
        if not events:
            return []
        if stream.skip:
            stream.next_seq += stream.skip
            stream.flushed_seq = stream.next_seq - 1
            stream.skip = 0
        now = utcnow()
        numbers = []
        for type_, data in events:
            if type_ == "state":
                self._time(job_id, data)
            record = EventRecord(job_id, stream.next_seq, type_, dict(data), now)
            stream.next_seq += 1
            stream.ring.append(record)
            self._pending.append(record)
            numbers.append(record.seq)
        stream.wake()
        return numbers

    async def flush(self) -> int:
        """Write every buffered event to the table; returns how many were written. On a
        database error they stay buffered for the next flush."""
        async with self._flush_lock:
            batch, self._pending = self._pending, []
            if not batch:
                return 0
            try:
                await asyncio.to_thread(self._store.append, batch)
            except Exception:
                self._pending = batch + self._pending
                raise
            for record in batch:
                stream = self._streams.get(record.job_id)
                if stream is not None:
                    stream.flushed_seq = max(stream.flushed_seq, record.seq)
            return len(batch)

    async def run_flusher(self) -> None:
        """Flush every ``flush_interval_s`` until cancelled (then flush once more)."""
        try:
            while True:
                await asyncio.sleep(self.flush_interval_s)
                try:
                    await self.flush()
                except Exception:
                    log.exception("flushing job events failed; will retry")
        finally:
            await self.flush()

    async def wait(
        self, job_id: str, after: int, timeout_s: float, limit: int = 1000
    ) -> list[EventRecord] | None:
        """Events of the job with ``seq > after``, waiting up to ``timeout_s`` for one.

        Returns a non-empty list (in order, contiguous from ``after + 1``), ``[]`` when the
        time ran out with nothing new, or ``None`` when the events after ``after`` are no
        longer (or not) in memory: read them from the table, then ask again.
        """
        stream = await self._stream(job_id)
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            ring = stream.ring
            if stream.next_seq - 1 > after:
                if not ring or ring[0].seq > after + 1:
                    return None
                start = after + 1 - ring[0].seq
                return [ring[i] for i in range(start, min(len(ring), start + limit))]
            changed = stream.changed
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                return []
            try:
                async with asyncio.timeout(remaining):
                    await changed.wait()
            except TimeoutError:
                return []

    def _time(self, job_id: str, data: dict[str, Any]) -> None:
        state = data.get("state")
        clock = asyncio.get_running_loop().time()
        if state == "running":
            self._started[job_id] = (str(data.get("kind", "")), clock)
            if len(self._started) > 100_000:
                self._started.pop(next(iter(self._started)))
        elif state in _FINAL_STATES and job_id in self._started:
            kind, began = self._started.pop(job_id)
            histogram = self.durations.setdefault((kind, str(state)), DurationHistogram())
            histogram.observe(clock - began)

    def stats(self, job_id: str | None = None) -> HubStats:
        """Jobs tracked, events held in rings (only ``job_id``'s when given), events not yet
        flushed."""
        streams = [s for key, s in self._streams.items() if job_id is None or key == job_id]
        return HubStats(
            jobs=len(self._streams),
            buffered=sum(len(s.ring) for s in streams),
            pending=len(self._pending),
        )

    async def _stream(self, job_id: str) -> _Stream:
        stream = self._streams.get(job_id)
        if stream is not None:
            self._streams.move_to_end(job_id)
            return stream
        last, inherited = await asyncio.to_thread(self._last, job_id)
        stream = self._streams.get(job_id)
        if stream is None:
            skip = self._ring_size if inherited else 0
            stream = _Stream(last + 1, last, deque(maxlen=self._ring_size), skip)
            self._streams[job_id] = stream
            self._evict()
        return stream

    def _last(self, job_id: str) -> tuple[int, bool]:
        """The job's last stored number, and whether another hub may have numbered more."""
        last = self._store.last_seq(job_id)
        return last, self._inherited is not None and self._inherited(job_id)

    def _evict(self) -> None:
        for job_id in list(self._streams):
            if len(self._streams) <= self._max_jobs:
                return
            stream = self._streams[job_id]
            if stream.unstored == 0 and not stream.numbering.locked():
                stream.wake()
                del self._streams[job_id]
