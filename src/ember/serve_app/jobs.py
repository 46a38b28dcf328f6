"""``/jobs``: submit, list, inspect, cancel and follow durable jobs.

Reads need ``jobs:read``, submits and cancels ``jobs:write``. A principal sees its own jobs
only; ``admin`` sees everyone's. Streams: ``GET /jobs/{id}/events`` (Server-Sent Events, each
event's ``id`` is its sequence number, ``Last-Event-ID`` or ``?after=`` resumes) and
``WS /jobs/{id}/ws?after=N`` (one JSON object per event). Both replay from the table and then
follow live; idle streams get a heartbeat (an SSE comment, or ``{"type": "heartbeat"}``).
A WebSocket refused before it opens (unknown job, bad ``after``, no free slot) gets the
problem document as a denial response where the server supports it (``job_not_found`` is a
404), else a close with code 1008 and ``code: detail`` as the reason
(:func:`~ember.serve_app.auth.websocket_refusal`).
Each open stream holds one of its principal's stream slots (:mod:`ember.serve_app.streams`);
a job's ``input`` is at most ``max_input_bytes`` of compact JSON (413 ``request_too_large``).
``GET /jobs/{id}/trace`` is the job's trace as a span tree, from the store of recent traces
(``traces``): the request that submitted it, every attempt and everything each did.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response, WebSocket
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.websockets import WebSocketDisconnect

from ember.auth import Principal, Scope
from ember.errors import (
    EmberError,
    IdempotencyConflict,
    InvalidCursor,
    JobCancelled,
    JobFinished,
    JobNotFinished,
    JobNotFound,
    NotReady,
    QuotaExceeded,
    RequestTooLarge,
    ServiceUnavailable,
    TooManyStreams,
    TraceNotFound,
    ValidationFailed,
    error_for_code,
)
from ember.jobs.records import EventRecord, JobRecord
from ember.jobs.service import JobService
from ember.jobs.states import JobState
from ember.observability.traces import TraceStore, span_tree
from ember.serve_app.auth import require, websocket_refusal
from ember.serve_app.openapi import problem_responses
from ember.serve_app.streams import HeldStreamingResponse, StreamSlots

__all__ = ["jobs_router"]

_MAX_SEQ = 2**63 - 1
"""The largest event number: ``job_events.seq`` is a 64-bit integer."""

Reader = Annotated[Principal, Depends(require(Scope.JOBS_READ))]
Writer = Annotated[Principal, Depends(require(Scope.JOBS_WRITE))]


class JobIn(BaseModel):
    """A job to run: its kind and the kind's input."""

    model_config = ConfigDict(extra="forbid")

    kind: str = Field(min_length=1, max_length=32, description="See `docs/jobs.md`.")
    input: dict[str, Any] = Field(default_factory=dict, description="Validated per kind.")


class JobOut(BaseModel):
    """A job as stored (``result`` only through ``/result``)."""

    id: str
    kind: str
    state: JobState
    principal: str
    request_id: str | None
    trace_id: str | None = Field(
        description="The trace the job belongs to (see `GET /jobs/{id}/trace`); null: not traced."
    )
    attempts: int
    max_attempts: int
    error_code: str | None
    error_detail: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, job: JobRecord) -> JobOut:
        return cls(
            id=job.id,
            kind=job.kind,
            state=job.state,
            principal=job.principal,
            request_id=job.request_id,
            trace_id=job.trace_id,
            attempts=job.attempts,
            max_attempts=job.max_attempts,
            error_code=job.error_code,
            error_detail=job.error_detail,
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
        )


class SpanOut(BaseModel):
    """One span of a trace and the spans it started."""

    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    kind: str
    service: str = Field(description="The process that made it (`ember-api`, `ember-worker`).")
    start_ns: int
    end_ns: int
    duration_ms: float
    status: str = Field(description="`unset`, `ok` or `error`.")
    status_detail: str | None
    attributes: dict[str, Any]
    events: list[dict[str, Any]]
    children: list[SpanOut]


class TraceOut(BaseModel):
    """A job's trace: its spans as trees (roots first; a span whose parent is not kept is a
    root)."""

    job_id: str
    trace_id: str
    spans: int
    roots: list[SpanOut]


class KindOut(BaseModel):
    """One job kind: what it does, the scopes it needs besides ``jobs:write`` and the JSON
    schema of its ``input``."""

    name: str
    description: str
    scopes: list[str]
    input_schema: dict[str, Any]


class KindsOut(BaseModel):
    kinds: list[KindOut]


class JobPage(BaseModel):
    jobs: list[JobOut]
    next_cursor: str | None


class ResultOut(BaseModel):
    id: str
    result: dict[str, Any]


def _after(last_event_id: str | None, after: int | None) -> int:
    if after is not None:
        return after
    if last_event_id is None:
        return 0
    try:
        value = int(last_event_id)
    except ValueError:
        value = -1
    if not 0 <= value <= _MAX_SEQ:
        raise ValidationFailed(
            f"Last-Event-ID must be an event id (an integer from 0 to {_MAX_SEQ})",
            errors=[
                {
                    "path": "header.last-event-id",
                    "message": f"an integer from 0 to {_MAX_SEQ}",
                    "type": "value_error",
                }
            ],
        )
    return value


def _sse(event: EventRecord) -> bytes:
    data = json.dumps(event.data, separators=(",", ":"))
    return f"id: {event.seq}\nevent: {event.type}\ndata: {data}\n\n".encode()


def _check_input_size(payload: dict[str, Any], limit: int | None) -> None:
    if limit is None:
        return
    size = len(json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode())
    if size > limit:
        raise RequestTooLarge(
            f"the job input is {size} bytes of JSON, over server.max_job_input_bytes ({limit})",
            extra={"limit_bytes": limit},
        )


def jobs_router(
    service: JobService,
    *,
    streams: StreamSlots | None = None,
    max_input_bytes: int | None = None,
    traces: TraceStore | None = None,
) -> APIRouter:
    """Routes over ``service``; event streams take slots of ``streams`` (``None``: no
    limit), inputs are held to ``max_input_bytes``, traces are read from ``traces``
    (``None``: none are kept)."""
    router = APIRouter(prefix="/jobs", tags=["jobs"])
    slots = StreamSlots(None) if streams is None else streams

    @router.post(
        "",
        status_code=201,
        response_model=JobOut,
        responses=problem_responses(
            IdempotencyConflict, QuotaExceeded, RequestTooLarge, NotReady, ServiceUnavailable
        ),
    )
    async def submit(
        body: JobIn,
        request: Request,
        response: Response,
        principal: Writer,
        idempotency_key: Annotated[
            str | None, Header(max_length=255, description="Same key, same body: same job.")
        ] = None,
    ) -> JobOut:
        """Queue a job. With ``Idempotency-Key``, a repeat of the same body returns the first
        job (200 and ``Idempotent-Replayed: true``); another body is 409."""
        _check_input_size(body.input, max_input_bytes)
        job, created = await service.submit(
            body.kind,
            body.input,
            principal,
            request_id=getattr(request.state, "request_id", None),
            idempotency_key=idempotency_key,
        )
        response.headers["Location"] = f"/jobs/{job.id}"
        if not created:
            response.status_code = 200
            response.headers["Idempotent-Replayed"] = "true"
        return JobOut.of(job)

    @router.get("/kinds", response_model=KindsOut)
    async def list_kinds(principal: Reader) -> KindsOut:
        """Every job kind ``POST /jobs`` takes, by name, with the JSON schema of its input
        (what a client builds a form from)."""
        kinds = [service.kinds.get(name) for name in service.kinds.names()]
        return KindsOut(
            kinds=[
                KindOut(
                    name=kind.name,
                    description=kind.description,
                    scopes=sorted(str(scope) for scope in kind.scopes),
                    input_schema=kind.input_model.model_json_schema(),
                )
                for kind in kinds
            ]
        )

    @router.get("", response_model=JobPage, responses=problem_responses(InvalidCursor))
    async def list_jobs(
        principal: Reader,
        state: Annotated[list[JobState] | None, Query(description="Repeatable.")] = None,
        kind: Annotated[list[str] | None, Query(description="Repeatable.")] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        cursor: Annotated[str | None, Query(max_length=200)] = None,
        agent: Annotated[
            str | None, Query(max_length=64, description="Only ``agent`` jobs of this profile.")
        ] = None,
    ) -> JobPage:
        """Jobs newest first, filtered by state, kind and agent profile; follow
        ``next_cursor`` for more."""
        jobs, next_cursor = await service.page(
            principal,
            states=state or (),
            kinds=kind or (),
            limit=limit,
            cursor=cursor,
            agent=agent,
        )
        return JobPage(jobs=[JobOut.of(job) for job in jobs], next_cursor=next_cursor)

    @router.get("/{job_id}", response_model=JobOut, responses=problem_responses(JobNotFound))
    async def get_job(job_id: str, principal: Reader) -> JobOut:
        """One job."""
        return JobOut.of(await service.get(job_id, principal))

    @router.get(
        "/{job_id}/result",
        response_model=ResultOut,
        responses=problem_responses(
            JobNotFound,
            JobCancelled,
            JobNotFinished,
            _4XX="a failed job's own error",
            _5XX="a failed job's own error",
        ),
    )
    async def get_result(job_id: str, principal: Reader) -> ResultOut:
        """The result of a succeeded job; a failed job answers with its own error code,
        a cancelled one ``job_cancelled``, an unfinished one ``job_not_finished``."""
        job = await service.get(job_id, principal)
        if job.state is JobState.SUCCEEDED:
            return ResultOut(id=job.id, result=job.result or {})
        if job.state is JobState.FAILED:
            raise error_for_code(job.error_code)(job.error_detail)
        if job.state is JobState.CANCELLED:
            raise JobCancelled(f"job {job.id} was cancelled")
        raise JobNotFinished(f"job {job.id} is {job.state.value}")

    @router.get(
        "/{job_id}/trace",
        response_model=TraceOut,
        responses=problem_responses(JobNotFound, TraceNotFound, ServiceUnavailable),
    )
    async def get_trace(job_id: str, principal: Reader) -> TraceOut:
        """The job's trace as span trees: the submitting request, each attempt, and the
        model calls, retrieval, agent steps, tools, sandbox and VM runs inside them. Spans
        reach the store within about a second of ending."""
        job = await service.get(job_id, principal)
        spans = [] if traces is None or job.trace_id is None else await traces.spans(job.trace_id)
        if not spans:
            why = "was not traced" if job.trace_id is None else "is no longer kept"
            raise TraceNotFound(f"the trace of job {job.id} {why}")
        roots = [SpanOut.model_validate(root) for root in span_tree(spans)]
        return TraceOut(job_id=job.id, trace_id=spans[0].trace_id, spans=len(spans), roots=roots)

    @router.post(
        "/{job_id}/cancel",
        status_code=202,
        response_model=JobOut,
        responses=problem_responses(JobNotFound, JobFinished, NotReady, ServiceUnavailable),
    )
    async def cancel(job_id: str, request: Request, principal: Writer) -> JobOut:
        """Cancel: a queued job never runs, a running one is stopped inside its work."""
        job = await service.cancel(
            job_id,
            principal,
            getattr(request.state, "request_id", None),
        )
        return JobOut.of(job)

    @router.get(
        "/{job_id}/events",
        response_class=StreamingResponse,
        responses={
            200: {"content": {"text/event-stream": {}}},
            **problem_responses(JobNotFound, NotReady, ServiceUnavailable),
        },
    )
    async def events(
        job_id: str,
        principal: Reader,
        last_event_id: Annotated[str | None, Header(max_length=32)] = None,
        after: Annotated[int | None, Query(ge=0, le=_MAX_SEQ)] = None,
    ) -> StreamingResponse:
        """The job's events as Server-Sent Events, from ``Last-Event-ID`` (or ``after``)."""
        start = _after(last_event_id, after)
        await service.get(job_id, principal)

        async def body() -> AsyncIterator[bytes]:
            try:
                async for event in service.follow(job_id, start):
                    yield b": heartbeat\n\n" if event is None else _sse(event)
            except EmberError as exc:
                error = {"code": exc.code, "detail": exc.detail}
                yield f"event: error\ndata: {json.dumps(error)}\n\n".encode()

        return HeldStreamingResponse(
            body(),
            slot=slots.take(principal.name),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @router.websocket("/{job_id}/ws")
    async def websocket(
        websocket: WebSocket, job_id: str, principal: Reader, after: int = 0
    ) -> None:
        """The job's events as JSON messages ``{"seq", "type", "data"}`` after ``after``."""
        try:
            if not 0 <= after <= _MAX_SEQ:
                raise ValidationFailed(f"after must be an event id (0 to {_MAX_SEQ})")
            await service.get(job_id, principal)
        except EmberError as exc:
            refusal = websocket_refusal(websocket, exc)
            if refusal is exc:
                raise
            raise refusal from exc
        try:
            slot = slots.take(principal.name)
        except TooManyStreams as exc:
            raise websocket_refusal(websocket, exc) from exc
        try:
            await websocket.accept()
            async for event in service.follow(job_id, after):
                if event is None:
                    await websocket.send_json({"type": "heartbeat"})
                else:
                    await websocket.send_json(
                        {"seq": event.seq, "type": event.type, "data": event.data}
                    )
            await websocket.close()
        except WebSocketDisconnect:
            return
        except EmberError as exc:
            await websocket.send_json(
                {"type": "error", "data": {"code": exc.code, "detail": exc.detail}}
            )
            await websocket.close(code=1011)
        finally:
            slot.release()

    return router
