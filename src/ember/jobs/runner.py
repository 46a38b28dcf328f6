"""The worker side of a job: run its handler under a lease, and record how it ended.

While the handler runs, the runner renews the lease every ``renew_interval_s``. A renewal that
finds the job ``cancelling`` cancels the handler's task (``CancelledError`` is raised inside
the work, so it really stops); one that finds the lease gone (the job was reaped and may run
elsewhere) cancels it too and records nothing. A renewal that fails (the database is down, or
the call hangs) is tried again at the next interval, but only while a later success could still
land before the lease runs out: once the lease has less than two renewal intervals left
unrenewed, the handler is cancelled and nothing is recorded, so the work has stopped before
the dispatcher may reap the lease and start the job on another worker (never two runs at
once). Before the handler starts, the lease is renewed once: a start that arrives after the
lease was reaped (or after the job ended) records nothing and runs nothing. A lease is the
owner's *and the attempt's*: when the same worker is leased the job again (its first lease was
reaped while its event loop was blocked), the first attempt's renewals and end are refused.
:meth:`JobRunner.cancel` is the direct path a dispatcher uses so the cancel does not
wait for the next renewal.

Outcomes: the handler's result → ``succeeded`` (``result`` event); an
:class:`~ember.errors.EmberError` → ``failed`` with its code (``error`` event); any other
exception → ``failed`` with ``internal`` and a generic detail that points at the logs (what
it said, a driver's SQL included, goes to the log only); cancelled → ``cancelled``. The row
is updated first and the events published after, so a client that sees the final ``state``
event can read the result. :class:`EventsLost` (the event hub is gone, as when the cluster
shuts down) is not the job's failure: the runner records nothing and stops renewing, so the
lease runs out and the job is queued again (``worker_lost``).

Each attempt is one span of ``tracer``, ``job {kind}`` (kind consumer), in the trace of the
request that submitted the job (``traceparent`` on its row), with ``ember.job.id``,
``ember.job.kind`` and ``ember.job.attempt``; the handler's spans are its children. While it
runs, the job's request id is the one in logs and spans.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from typing import Any

from opentelemetry.trace import NoOpTracer, SpanKind, Tracer

from ember.errors import EmberError, JobTimedOut
from ember.jobs.context import JobContext
from ember.jobs.kinds import JobKind, KindRegistry
from ember.jobs.protocol import Authority, JobRepository, Publish, PublishMany
from ember.jobs.records import JobRecord
from ember.jobs.states import JobState
from ember.observability import REQUEST_ID
from ember.observability.metrics import Metrics, NoMetrics
from ember.observability.tracing import extract, span

__all__ = ["EventsLost", "JobRunner"]

log = logging.getLogger(__name__)


_OUTCOMES = {JobState.SUCCEEDED: "ok"}


def _fields(job: JobRecord) -> dict[str, Any]:
    """The fields of every log line about ``job``."""
    return {
        "jobId": job.id,
        "requestId": job.request_id,
        "kind": job.kind,
        "principal": job.principal,
    }


def _ended(outcome: str, began: float | None) -> dict[str, Any]:
    """The fields of the line a job's attempt ends with: ``outcome`` (``ok``, ``cancelled`` or
    the error code) and, when it ran, ``latencyMs``."""
    if began is None:
        return {"outcome": outcome}
    return {"outcome": outcome, "latencyMs": round((time.perf_counter() - began) * 1000, 1)}


class EventsLost(Exception):
    """A job's events could not be published because the event hub is gone (or was restarted
    and lost events of the attempt). The API answers it as ``service_unavailable``."""


class JobRunner:
    """Runs leased jobs for one lease owner (a worker)."""

    def __init__(
        self,
        jobs: JobRepository,
        kinds: KindRegistry,
        publish: Publish,
        owner: str,
        *,
        lease_ttl_s: float = 10.0,
        renew_interval_s: float = 2.0,
        publish_many: PublishMany | None = None,
        authority: Authority | None = None,
        tracer: Tracer | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._jobs = jobs
        self._tracer = tracer or NoOpTracer()
        self._metrics = metrics or NoMetrics()
        self._authority = authority
        self._kinds = kinds
        self._publish = publish
        self._publish_many = publish_many
        self.owner = owner
        self._ttl = lease_ttl_s
        self._renew_every = renew_interval_s
        self._tasks: dict[str, asyncio.Task[dict[str, Any]]] = {}
        self.renewals = 0
        self._starting: dict[str, bool] = {}

    @property
    def active(self) -> int:
        """How many jobs are running here now."""
        return len(self._tasks)

    def cancel(self, job_id: str) -> bool:
        """Cancel the job's work if it runs (or is starting) here; returns whether it will be
        cancelled. A cancel that arrives while the job is starting takes effect as soon as
        its work begins."""
        task = self._tasks.get(job_id)
        if task is not None:
            task.cancel()
            return True
        if job_id in self._starting:
            self._starting[job_id] = True
            return True
        return False

    async def run(self, job: JobRecord) -> JobRecord | None:
        """Run ``job`` (leased to :attr:`owner`) to its end; returns the final row, or
        ``None`` when the lease was lost and someone else owns the outcome."""
        self._starting[job.id] = False
        token = REQUEST_ID.set(job.request_id)
        parent = extract({"traceparent": job.trace_parent} if job.trace_parent else None)
        attributes = {"ember.job.id": job.id, "ember.job.kind": job.kind}
        try:
            with span(
                self._tracer,
                f"job {job.kind}",
                kind=SpanKind.CONSUMER,
                context=parent,
                attributes={**attributes, "ember.job.attempt": job.attempts},
            ) as current:
                final = await self._run(job)
                if final is not None:
                    outcome = final.error_code or _OUTCOMES.get(final.state, final.state.value)
                    self._metrics.inc("ember_job_attempts_total", kind=job.kind, outcome=outcome)
                if final is not None and current.is_recording():
                    current.set_attribute("ember.job.state", final.state.value)
                    if final.error_code is not None:
                        current.set_attribute("error.type", final.error_code)
                return final
        finally:
            REQUEST_ID.reset(token)
            self._starting.pop(job.id, None)

    async def _run(self, job: JobRecord) -> JobRecord | None:
        try:
            kind = self._kinds.get(job.kind)
            payload = kind.input_model.model_validate(job.input)
            if self._authority is not None:
                await asyncio.to_thread(self._authority.check, job, kind.scopes)
        except EmberError as exc:
            return await self._fail(job, exc)
        extra = _fields(job)
        if not await self._still_leased(job):
            log.warning("job lease gone before it started; leaving it to its owner", extra=extra)
            return None
        log.info("job started", extra={**extra, "attempt": job.attempts})
        began = time.perf_counter()
        running = {"state": "running", "attempt": job.attempts, "kind": job.kind}
        try:
            await self._publish(job.id, "state", running)
        except EventsLost:
            log.warning("the event hub is gone; leaving the job to be queued again", extra=extra)
            return None
        many = self._publish_many
        context = JobContext(
            job,
            lambda type_, data: self._publish(job.id, type_, data),
            (lambda events: many(job.id, events)) if many is not None else None,
        )
        work = asyncio.create_task(self._call(kind, context, payload))
        self._tasks[job.id] = work
        if self._starting.pop(job.id, False):
            work.cancel()
        try:
            lost = await self._supervise(job, work)
        finally:
            if self._tasks.get(job.id) is work:
                del self._tasks[job.id]
        if lost:
            log.warning("job lease lost; leaving it to its new owner", extra=extra)
            return None
        if work.cancelled():
            final = await self._finish(job, JobState.CANCELLED)
            log.info("job cancelled", extra=extra | _ended("cancelled", began))
            return final
        error = work.exception()
        if isinstance(error, EventsLost):
            log.warning("the event hub is gone; leaving the job to be queued again", extra=extra)
            return None
        if error is None:
            result = work.result()
            final = await self._finish(job, JobState.SUCCEEDED, result=result)
            if final is not None:
                await self._publish(job.id, "result", result)
                await self._publish(job.id, "state", {"state": "succeeded"})
            log.info("job succeeded", extra=extra | _ended("ok", began))
            return final
        if not isinstance(error, EmberError):
            log.error("job handler crashed", extra=extra, exc_info=error)
            error = EmberError(
                f"internal error (see logs, request id {job.request_id or '-'}, job {job.id})"
            )
        return await self._fail(job, error, began)

    async def _still_leased(self, job: JobRecord) -> bool:
        """Whether ``job`` is still leased to this worker as it starts (a start that arrives
        after its lease was reaped, or after the job ended, must not run the work again). A
        renewal that fails here is left to the supervisor's renewals."""
        try:
            state = await asyncio.to_thread(
                self._jobs.renew, job.id, self.owner, self._ttl, attempt=job.attempts
            )
        except Exception:
            return True
        return state is not None

    def _lease_left_s(self, job: JobRecord) -> float:
        """Seconds the lease ``job`` came with has left (at most the TTL)."""
        expires = job.lease_expires_at
        if expires is None:
            return self._ttl
        if expires.tzinfo is None:
            expires = expires.replace(tzinfo=UTC)
        return min(self._ttl, (expires - datetime.now(UTC)).total_seconds())

    async def _supervise(self, job: JobRecord, work: asyncio.Task[dict[str, Any]]) -> bool:
        """Renew the lease until ``work`` is done; returns whether the lease was lost (or could
        not be renewed in time, and ``work`` was cancelled)."""
        loop = asyncio.get_running_loop()
        expires = loop.time() + self._lease_left_s(job)
        margin = 2 * self._renew_every
        lost = False
        while not work.done():
            done, _ = await asyncio.wait({work}, timeout=self._renew_every)
            if done:
                break
            sent = loop.time()
            try:
                state = await asyncio.wait_for(
                    asyncio.to_thread(
                        self._jobs.renew, job.id, self.owner, self._ttl, attempt=job.attempts
                    ),
                    timeout=max(expires - margin - sent, self._renew_every),
                )
            except Exception:
                if loop.time() + margin < expires:
                    log.warning("lease renewal failed; trying again", extra={"jobId": job.id})
                    continue
                log.error(
                    "lease renewal failed too long; stopping the job before its lease runs out",
                    extra={"jobId": job.id},
                    exc_info=True,
                )
                lost = True
                work.cancel()
                break
            expires = sent + self._ttl
            self.renewals += 1
            if state is None:
                lost = True
                work.cancel()
            elif state is JobState.CANCELLING:
                work.cancel()
        await asyncio.wait({work})
        return lost

    @staticmethod
    async def _call(kind: JobKind, context: JobContext, payload: Any) -> dict[str, Any]:
        if kind.timeout_s is None:
            return await kind.handler(context, payload)
        try:
            async with asyncio.timeout(kind.timeout_s):
                return await kind.handler(context, payload)
        except TimeoutError as exc:
            raise JobTimedOut(f"the job ran past its limit of {kind.timeout_s:g} s") from exc

    async def _fail(
        self, job: JobRecord, error: EmberError, began: float | None = None
    ) -> JobRecord | None:
        final = await self._finish(
            job, JobState.FAILED, error_code=error.code, error_detail=error.detail
        )
        if final is not None:
            await self._publish(job.id, "error", {"code": error.code, "detail": error.detail})
            await self._publish(job.id, "state", {"state": "failed", "code": error.code})
        log.info("job failed", extra=_fields(job) | _ended(error.code, began))
        return final

    async def _finish(self, job: JobRecord, state: JobState, **values: Any) -> JobRecord | None:
        try:
            final = await asyncio.to_thread(
                self._jobs.finish, job.id, self.owner, state, attempt=job.attempts, **values
            )
        except EmberError as exc:
            log.warning("could not record the job's end: %s", exc, extra={"jobId": job.id})
            return None
        if state is JobState.CANCELLED:
            await self._publish(job.id, "state", {"state": "cancelled"})
        return final
