"""``/agents`` (profiles of the caller's workspace) and what an ``agent`` job leaves:
``/jobs/{id}/transcript`` and ``/jobs/{id}/artifacts``.

Profiles: reads need ``agents:read``, writes ``agents:write`` (audited). A profile body is an
:class:`~ember.agents.policy.AgentProfile`: unknown fields, unknown tools and MCP servers
whose host is not an egress host are 422 ``validation_failed``. Another workspace's profile is
404 ``agent_not_found``. A job's transcript and artifacts need ``jobs:read`` and are seen by
whoever may see the job.
"""

from __future__ import annotations

import re
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel

from ember.agents.policy import AgentProfile
from ember.agents.profiles import AgentRecord, SqlAgentProfiles
from ember.agents.runs import SqlAgentRuns
from ember.agents.toolbox import BUILTIN_TOOLS
from ember.auth import Principal, Scope
from ember.errors import (
    AgentExists,
    AgentNotFound,
    ArtifactNotFound,
    InvalidCursor,
    JobNotFound,
    ValidationFailed,
)
from ember.jobs.artifacts import SqlArtifactStore
from ember.jobs.service import JobService
from ember.serve_app.auth import require
from ember.serve_app.openapi import problem_responses
from ember.storage import AuditDraft, AuditLog, audited
from ember.storage.names import NAME_PATTERN

__all__ = ["agents_router"]

Reader = Annotated[Principal, Depends(require(Scope.AGENTS_READ))]
Writer = Annotated[Principal, Depends(require(Scope.AGENTS_WRITE))]
JobReader = Annotated[Principal, Depends(require(Scope.JOBS_READ))]


class AgentOut(BaseModel):
    name: str
    profile: dict[str, Any]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, record: AgentRecord) -> AgentOut:
        profile = record.profile.model_dump(mode="json")
        return cls(
            name=record.name,
            profile=profile,
            created_at=record.created_at,
            updated_at=record.updated_at,
        )


class AgentPage(BaseModel):
    items: list[AgentOut]
    next: str | None


class ArtifactOut(BaseModel):
    path: str
    size: int
    sha256: str


class ArtifactList(BaseModel):
    job_id: str
    artifacts: list[ArtifactOut]


def _checked(profile: AgentProfile) -> AgentProfile:
    unknown = sorted(set(profile.tools) - set(BUILTIN_TOOLS))
    if unknown:
        raise ValidationFailed(
            f"no built-in tool named {', '.join(unknown)}; built in: {', '.join(BUILTIN_TOOLS)}"
        )
    return profile


def agents_router(
    profiles: SqlAgentProfiles,
    runs: SqlAgentRuns,
    artifacts: SqlArtifactStore,
    jobs: JobService,
    audit: AuditLog,
) -> APIRouter:
    """Routes over the profile table, the transcripts and the artifacts."""
    router = APIRouter(tags=["agents"])

    def audit_as(
        principal: Principal, request: Request, action: str, name: str
    ) -> AbstractContextManager[AuditDraft]:
        return audited(
            audit,
            principal.name,
            action,
            f"agent:{name}",
            request_id=getattr(request.state, "request_id", None),
            workspace=principal.workspace,
        )

    @router.post(
        "/agents",
        status_code=201,
        response_model=AgentOut,
        responses=problem_responses(AgentExists, ValidationFailed),
    )
    def create_agent(body: AgentProfile, principal: Writer, request: Request) -> AgentOut:
        """Store a profile under ``body.name``; 409 ``agent_exists`` if the name is taken."""
        with audit_as(principal, request, "agent.create", body.name):
            record = profiles.in_workspace(principal.workspace).create(_checked(body))
        return AgentOut.of(record)

    @router.get("/agents", response_model=AgentPage, responses=problem_responses(InvalidCursor))
    def list_agents(
        principal: Reader,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        after: Annotated[str | None, Query(max_length=64)] = None,
    ) -> AgentPage:
        """Profiles by name, ``limit`` at a time (``after``: the ``next`` of a page)."""
        if after is not None and not re.fullmatch(NAME_PATTERN, after):
            raise InvalidCursor(f"after={after!r} is not an agent name")
        records = profiles.in_workspace(principal.workspace).list(limit=limit + 1, after=after)
        page = records[:limit]
        following = page[-1].name if len(records) > limit else None
        return AgentPage(items=[AgentOut.of(r) for r in page], next=following)

    @router.get(
        "/agents/{name}", response_model=AgentOut, responses=problem_responses(AgentNotFound)
    )
    def get_agent(name: str, principal: Reader) -> AgentOut:
        """One profile; 404 ``agent_not_found``."""
        return AgentOut.of(profiles.in_workspace(principal.workspace).get(name))

    @router.put(
        "/agents/{name}",
        response_model=AgentOut,
        responses=problem_responses(AgentNotFound, ValidationFailed),
    )
    def replace_agent(
        name: str, body: AgentProfile, principal: Writer, request: Request
    ) -> AgentOut:
        """Replace a profile (the body's ``name`` must be ``name`` or left out); 404
        ``agent_not_found`` when there is none to replace."""
        if "name" in body.model_fields_set and body.name != name:
            raise ValidationFailed(f"the body names {body.name!r}, the path {name!r}")
        profile = _checked(body.model_copy(update={"name": name}))
        with audit_as(principal, request, "agent.replace", name):
            record = profiles.in_workspace(principal.workspace).replace(profile)
        return AgentOut.of(record)

    @router.delete("/agents/{name}", status_code=204, responses=problem_responses(AgentNotFound))
    def delete_agent(name: str, principal: Writer, request: Request) -> Response:
        """Delete a profile (jobs that ran it keep their transcripts)."""
        with audit_as(principal, request, "agent.delete", name):
            profiles.in_workspace(principal.workspace).delete(name)
        return Response(status_code=204)

    @router.get(
        "/jobs/{job_id}/transcript",
        tags=["jobs"],
        responses=problem_responses(JobNotFound),
    )
    async def get_transcript(job_id: str, principal: JobReader) -> dict[str, Any]:
        """An ``agent`` job's transcript as stored after its last step: ``status``,
        ``answer``, ``steps``, ``messages``, usage; 404 ``job_not_found`` for a job with
        none (not an agent job, or not started)."""
        job = await jobs.get(job_id, principal)
        transcript = await run_in_threadpool(runs.get, job.id)
        if transcript is None:
            raise JobNotFound(f"job {job.id} has no agent transcript")
        return transcript

    @router.get(
        "/jobs/{job_id}/artifacts",
        tags=["jobs"],
        response_model=ArtifactList,
        responses=problem_responses(JobNotFound),
    )
    async def list_artifacts(job_id: str, principal: JobReader) -> ArtifactList:
        """The files the job left, by path (empty while it runs)."""
        job = await jobs.get(job_id, principal)
        kept = await run_in_threadpool(artifacts.list, job.id)
        return ArtifactList(
            job_id=job.id,
            artifacts=[ArtifactOut(path=a.path, size=a.size, sha256=a.sha256) for a in kept],
        )

    @router.get(
        "/jobs/{job_id}/artifacts/{path:path}",
        tags=["jobs"],
        response_class=Response,
        responses={
            200: {"content": {"application/octet-stream": {}}},
            **problem_responses(JobNotFound, ArtifactNotFound),
        },
    )
    async def get_artifact(job_id: str, path: str, principal: JobReader) -> Response:
        """One file the job left, as bytes (``application/octet-stream``, with its digest in
        ``ETag``); 404 ``artifact_not_found``."""
        job = await jobs.get(job_id, principal)
        artifact = await run_in_threadpool(artifacts.read, job.id, path)
        name = quote(path.rsplit("/", 1)[-1], safe="")
        headers = {
            "ETag": f'"{artifact.sha256}"',
            "Content-Disposition": f"attachment; filename*=UTF-8''{name}",
            "X-Content-Type-Options": "nosniff",
        }
        return Response(artifact.content, media_type="application/octet-stream", headers=headers)

    return router
