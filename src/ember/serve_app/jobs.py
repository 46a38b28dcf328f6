"""``/jobs``: submit, list, inspect, cancel and follow durable jobs.

Reads need ``jobs:read``, submits and cancels ``jobs:write``. A principal sees its own jobs
only; ``admin`` sees everyone's. Streams: ``GET /jobs/{id}/events`` (Server-Sent Events, each
event's ``id`` is its sequence number, ``Last-Event-ID`` or ``?after=`` resumes) and
``WS /jobs/{id}/ws?after=N`` (one JSON object per event). Both replay from the table and then
follow live; idle streams get a heartbeat (an SSE comment, or ``{"type": "heartbeat"}``).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response, WebSocket
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import WebSocketException
from starlette.websockets import WebSocketDisconnect

from ember.auth import Principal, Scope
from ember.errors import EmberError, JobCancelled, JobNotFinished, ValidationFailed, error_for_code
from ember.jobs.records import EventRecord, JobRecord
from ember.jobs.service import JobService
from ember.jobs.states import JobState
from ember.serve_app.auth import require

__all__ = ["jobs_router"]

_POLICY = 1008

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
            attempts=job.attempts,
            max_attempts=job.max_attempts,
            error_code=job.error_code,
            error_detail=job.error_detail,
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
        )


class JobPage(BaseModel):
    jobs: list[JobOut]
    next_cursor: str | None


class ResultOut(BaseModel):
    id: str
    result: dict[str, Any]


def _owner(principal: Principal) -> str | None:
    return None if principal.allows(Scope.ADMIN) else principal.name


def _after(last_event_id: str | None, after: int | None) -> int:
    if after is not None:
        return after
    if last_event_id is None:
        return 0
    try:
        value = int(last_event_id)
    except ValueError as exc:
        raise ValidationFailed("Last-Event-ID must be an event id (an integer)") from exc
    return max(0, value)


def _sse(event: EventRecord) -> bytes:
    data = json.dumps(event.data, separators=(",", ":"))
    return f"id: {event.seq}\nevent: {event.type}\ndata: {data}\n\n".encode()


def jobs_router(service: JobService) -> APIRouter:
    """Routes over ``service``."""
    router = APIRouter(prefix="/jobs", tags=["jobs"])

    @router.post("", status_code=201, response_model=JobOut)
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
        job, created = await service.submit(
            body.kind,
            body.input,
            principal.name,
            request_id=getattr(request.state, "request_id", None),
            idempotency_key=idempotency_key,
        )
        response.headers["Location"] = f"/jobs/{job.id}"
        if not created:
            response.status_code = 200
            response.headers["Idempotent-Replayed"] = "true"
        return JobOut.of(job)

    @router.get("", response_model=JobPage)
    async def list_jobs(
        principal: Reader,
        state: Annotated[list[JobState] | None, Query(description="Repeatable.")] = None,
        kind: Annotated[list[str] | None, Query(description="Repeatable.")] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        cursor: Annotated[str | None, Query(max_length=200)] = None,
    ) -> JobPage:
        """Jobs newest first, filtered by state and kind; follow ``next_cursor`` for more."""
        jobs, next_cursor = await service.page(
            _owner(principal), states=state or (), kinds=kind or (), limit=limit, cursor=cursor
        )
        return JobPage(jobs=[JobOut.of(job) for job in jobs], next_cursor=next_cursor)

    @router.get("/{job_id}", response_model=JobOut)
    async def get_job(job_id: str, principal: Reader) -> JobOut:
        """One job."""
        return JobOut.of(await service.get(job_id, _owner(principal)))

    @router.get("/{job_id}/result", response_model=ResultOut)
    async def get_result(job_id: str, principal: Reader) -> ResultOut:
        """The result of a succeeded job; a failed job answers with its own error code,
        a cancelled one ``job_cancelled``, an unfinished one ``job_not_finished``."""
        job = await service.get(job_id, _owner(principal))
        if job.state is JobState.SUCCEEDED:
            return ResultOut(id=job.id, result=job.result or {})
        if job.state is JobState.FAILED:
            raise error_for_code(job.error_code)(job.error_detail)
        if job.state is JobState.CANCELLED:
            raise JobCancelled(f"job {job.id} was cancelled")
        raise JobNotFinished(f"job {job.id} is {job.state.value}")

    @router.post("/{job_id}/cancel", status_code=202, response_model=JobOut)
    async def cancel(job_id: str, request: Request, principal: Writer) -> JobOut:
        """Cancel: a queued job never runs, a running one is stopped inside its work."""
        job = await service.cancel(
            job_id,
            _owner(principal),
            principal.name,
            getattr(request.state, "request_id", None),
        )
        return JobOut.of(job)

    @router.get(
        "/{job_id}/events",
        response_class=StreamingResponse,
        responses={200: {"content": {"text/event-stream": {}}}},
    )
    async def events(
        job_id: str,
        principal: Reader,
        last_event_id: Annotated[str | None, Header(max_length=32)] = None,
        after: Annotated[int | None, Query(ge=0)] = None,
    ) -> StreamingResponse:
        """The job's events as Server-Sent Events, from ``Last-Event-ID`` (or ``after``)."""
        await service.get(job_id, _owner(principal))
        start = _after(last_event_id, after)

        async def body() -> AsyncIterator[bytes]:
            try:
                async for event in service.follow(job_id, start):
                    yield b": heartbeat\n\n" if event is None else _sse(event)
            except EmberError as exc:
                error = {"code": exc.code, "detail": exc.detail}
                yield f"event: error\ndata: {json.dumps(error)}\n\n".encode()

        return StreamingResponse(
            body(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @router.websocket("/{job_id}/ws")
    async def websocket(
        websocket: WebSocket, job_id: str, principal: Reader, after: int = 0
    ) -> None:
        """The job's events as JSON messages ``{"seq", "type", "data"}`` after ``after``."""
        try:
            await service.get(job_id, _owner(principal))
        except EmberError as exc:
            raise WebSocketException(_POLICY, f"{exc.code}: {exc.detail}"[:120]) from exc
        await websocket.accept()
        try:
            async for event in service.follow(job_id, max(0, after)):
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

    return router
