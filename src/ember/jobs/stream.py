"""Following a job's events: replay from the table, then live, with no gap and no repeat.

:func:`follow` yields every event after ``after`` in order, ``None`` as a heartbeat when
nothing happened for ``heartbeat_s``, and stops after the event that puts the job in a final
state (or, if that event was lost, once the job row is final and nothing more comes). A job
that is already over when following starts, with nothing stored after ``after`` (a client
resuming past the end), ends the stream at once: nothing is awaited. While
the bus cannot reach the live side (:class:`~ember.errors.ServiceUnavailable`: the event hub is
restarting) it goes on as if nothing new had come: heartbeats, and the row's final state ends
the stream.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from ember.errors import ServiceUnavailable
from ember.jobs.protocol import EventStore, JobBus, JobRepository
from ember.jobs.records import EventRecord
from ember.jobs.states import TERMINAL

__all__ = ["follow", "is_final"]

_FINAL = frozenset(state.value for state in TERMINAL)


def is_final(event: EventRecord) -> bool:
    """Whether ``event`` is the one that puts its job in a final state."""
    return event.type == "state" and event.data.get("state") in _FINAL


async def follow(
    job_id: str,
    after: int,
    *,
    events: EventStore,
    jobs: JobRepository,
    bus: JobBus,
    heartbeat_s: float,
    replay_batch: int = 1000,
) -> AsyncIterator[EventRecord | None]:
    """See the module docstring. The job must exist (check before calling)."""
    last = after
    first = True
    while True:
        replayed = 0
        while True:
            batch = await asyncio.to_thread(events.after, job_id, last, replay_batch)
            for event in batch:
                yield event
                last = event.seq
                if is_final(event):
                    return
            replayed += len(batch)
            if len(batch) < replay_batch:
                break
        if first and not replayed:
            over, stored = await asyncio.to_thread(_over, job_id, events, jobs)
            if stored > last:
                continue  # stored since the replay looked: replay it
            if over:
                return
        first = False
        while True:
            try:
                live = await bus.wait(job_id, last, heartbeat_s)
            except ServiceUnavailable:
                live = []
            if live is None:
                if not replayed:
                    await asyncio.sleep(0.02)
                break
            if not live:
                job = await asyncio.to_thread(jobs.get, job_id)
                if job.state in TERMINAL:
                    tail = await asyncio.to_thread(events.after, job_id, last, replay_batch)
                    if not tail:
                        return
                    break
                yield None
                continue
            for event in live:
                yield event
                last = event.seq
                if is_final(event):
                    return


def _over(job_id: str, events: EventStore, jobs: JobRepository) -> tuple[bool, int]:
    """Whether nothing more will come (the job row is final and so is its last stored event:
    a final row whose final event is not stored yet, or was lost, is not over here), and the
    last stored sequence number, so the caller replays what was stored since it looked."""
    if jobs.get(job_id).state not in TERMINAL:
        return False, 0
    last = events.last_seq(job_id)
    tail = events.after(job_id, last - 1, 1) if last else []
    return bool(tail) and is_final(tail[-1]), last
