"""The ``agent`` job kind: a profile's agent works a task with tools in a sandbox.

The job names a profile of its workspace (``agents`` table) and may narrow it (never widen:
``policy_denied``). Each attempt gets a fresh working directory under ``work_root``: the
agent's file tools and sandboxed commands see only it. Every step is streamed (``log`` events
for tool calls and results, ``token`` for the answer) and the transcript is written to the
``agent_runs`` row after every step, so a cancelled or lost run keeps what it did. When the
run ends, in every way, the files left in the directory become the job's artifacts (within
:class:`~ember.jobs.artifacts.ArtifactLimits`; only while the attempt holds the job's lease, so
an attempt that lost it never replaces the files of the one that finished the job) and the
directory is removed.

The run's outcome is the job's: ``completed`` succeeds with the answer; a limit fails the job
``agent_limit_exceeded`` (naming the limit), a budget ``budget_exceeded``, a cancel leaves it
``cancelled``. Commands run only in the sandbox: when it is unavailable, a profile that may run
commands fails ``sandbox_unavailable`` before the model is called, never unsandboxed.

The run's ``run_command``/``run_python`` calls share one sandbox session
(:meth:`~ember.sandbox.protocol.Sandbox.session`), opened by the first of them and closed
when the run ends, in every way (cancel included), before the artifacts are collected.

The profile's MCP servers (:mod:`ember.agents.mcp`) are opened after the sandbox check and
before the first model call (a stdio server in the sandbox, over the run's directory); one
that cannot be opened fails the job (``mcp_server_failed``, ``policy_denied``,
``bad_request``). They are closed when the run ends, in every way (cancel included): their
processes are gone before the artifacts are collected. A ``log`` event ``"mcp server
ready"`` names each server and its tools.

The run's spans (``invoke_agent``, its steps and tool calls: :mod:`ember.agents.loop`) are made
by ``AgentParts.tracer``, children of the job's span; its counts (runs, steps, tool calls,
denials) are recorded in ``AgentParts.metrics``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opentelemetry.trace import NoOpTracer, Tracer
from pydantic import BaseModel, ConfigDict, Field

from ember.agents.loop import DENIED, AgentLoop
from ember.agents.memory_tool import ServiceMemorySearch
from ember.agents.policy import AgentProfile, ProfileOverrides, narrow
from ember.agents.profiles import SqlAgentProfiles
from ember.agents.protocol import ToolSource
from ember.agents.runs import SqlAgentRuns
from ember.agents.toolbox import builtin_tools
from ember.agents.transcript import Transcript
from ember.auth.principal import Principal
from ember.auth.protocol import TokenRepository
from ember.auth.scopes import ALL_SCOPES, Scope
from ember.errors import SandboxUnavailable
from ember.jobs.artifacts import ArtifactLimits, SqlArtifactStore, collect
from ember.jobs.context import JobContext
from ember.jobs.kinds import JobKind
from ember.jobs.lease import holds_lease
from ember.jobs.records import JobRecord
from ember.memory.service import MemoryService
from ember.observability.metrics import Metrics, NoMetrics
from ember.providers.router import Router, RouteRequest
from ember.sandbox.protocol import Sandbox
from ember.storage.protocol import AuditLog
from ember.storage.records import AuditRecord

__all__ = ["AgentInput", "AgentParts", "agent_kind"]

log = logging.getLogger(__name__)

_COMMAND_TOOLS = frozenset({"run_command", "run_python"})


class AgentInput(BaseModel):
    """Input of an ``agent`` job."""

    model_config = ConfigDict(extra="forbid")

    agent: str = Field(min_length=1, max_length=64, description="A profile of the workspace.")
    task: str = Field(min_length=1, max_length=100_000, description="What the agent is to do.")
    overrides: ProfileOverrides | None = Field(
        None, description="Narrower tools, hosts or limits for this run only."
    )


@dataclass(frozen=True)
class AgentParts:
    """What an agent run is built from; each callable builds its part on first use.

    ``memory``, ``router``, ``sandbox`` and ``vm_sandbox`` may block while they build (the
    memory plane loads its embedding model: seconds) and are called in a worker thread, never
    on the event loop, where a blocked loop would stop the job's lease renewals."""

    profiles: Callable[[], SqlAgentProfiles]
    runs: Callable[[], SqlAgentRuns]
    artifacts: Callable[[], SqlArtifactStore]
    router: Callable[[], Router]
    memory: Callable[[], MemoryService]
    sandbox: Callable[[], Sandbox]
    tokens: Callable[[], TokenRepository]
    audit: Callable[[], AuditLog]
    work_root: Path
    artifact_limits: ArtifactLimits = field(default_factory=ArtifactLimits)
    vm_sandbox: Callable[[], Sandbox] | None = None
    """The sandbox of profiles with ``isolation: vm`` (``None``: such runs fail
    ``sandbox_unavailable``)."""
    tracer: Tracer = field(default_factory=NoOpTracer)
    """Makes the runs' spans."""
    capture_content: bool = False
    """Whether tool arguments and results go on spans."""
    metrics: Metrics = field(default_factory=NoMetrics)
    """Where the runs' counts are recorded."""


class _Persisting:
    """The job's events, the transcript written after each step, and an audit row
    (``agent.tool_denied``) for every tool call denied (:data:`~ember.agents.loop.DENIED`)."""

    def __init__(self, context: JobContext, save: Callable[[], None], audit: AuditLog) -> None:
        self._context = context
        self._save = save
        self._audit = audit

    async def log(self, message: str, **fields: Any) -> int:
        seq = await self._context.log(message, **fields)
        if message == "tool result" and fields.get("code") in DENIED:
            await asyncio.to_thread(self._denied, fields)
        if message in ("agent step", "tool result"):
            await asyncio.to_thread(self._save)
        return seq

    def _denied(self, fields: dict[str, Any]) -> None:
        job = self._context.job
        entry = AuditRecord(
            actor=job.principal,
            action="agent.tool_denied",
            resource=f"job:{job.id}",
            outcome="denied",
            request_id=job.request_id,
            detail={
                "tool": fields.get("tool"),
                "call_id": fields.get("call_id"),
                "step": fields.get("step"),
                "code": fields.get("code"),
                "reason": str(fields.get("content", ""))[:500],
            },
            workspace=job.workspace,
        )
        self._audit.append(entry)

    async def token(self, text: str) -> int:
        return await self._context.token(text)


def _principal(job: JobRecord, tokens: TokenRepository) -> Principal:
    """Who the run acts as: the submitting token as it is now, or the loopback caller."""
    if job.token_id is None:
        return Principal(job.principal, ALL_SCOPES - {Scope.CLUSTER_ADMIN}, workspace=job.workspace)
    return tokens.principal_of(job.token_id)


def _checked_sandbox(parts: AgentParts, isolation: str) -> Sandbox:
    """The sandbox a profile's ``isolation`` names, checked (blocks: call it in a thread).

    :raises SandboxUnavailable: ``vm`` where no VM tier is configured, or the sandbox cannot
        run here.
    """
    if isolation != "vm":
        sandbox = parts.sandbox()
    elif parts.vm_sandbox is None:
        raise SandboxUnavailable("isolation 'vm' needs the VM tier, which is not set up here")
    else:
        sandbox = parts.vm_sandbox()
    sandbox.check()
    return sandbox


def agent_kind(parts: AgentParts) -> JobKind:
    """The ``agent`` kind over ``parts``."""

    async def run(context: JobContext, payload: AgentInput) -> dict[str, Any]:
        job = context.job
        record = await asyncio.to_thread(
            lambda: parts.profiles().in_workspace(job.workspace).get(payload.agent)
        )
        profile = narrow(record.profile, payload.overrides)
        sandbox = None
        if _COMMAND_TOOLS & set(profile.tools) or any(s.command for s in profile.mcp_servers):
            sandbox = await asyncio.to_thread(_checked_sandbox, parts, profile.isolation)
        principal = await asyncio.to_thread(_principal, job, parts.tokens())
        directory = parts.work_root / f"{job.id}-{job.attempts}"
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        try:
            async with contextlib.AsyncExitStack() as sessions:
                return await _work(
                    context, payload, profile, principal, sandbox, directory, sessions
                )
        finally:
            await asyncio.to_thread(_keep_artifacts, job, directory)

    async def _work(
        context: JobContext,
        payload: AgentInput,
        profile: AgentProfile,
        principal: Principal,
        sandbox: Sandbox | None,
        directory: Path,
        sessions: contextlib.AsyncExitStack,
    ) -> dict[str, Any]:
        job = context.job
        memory = None
        if "search_memory" in profile.tools:
            memory = ServiceMemorySearch(await asyncio.to_thread(parts.memory), principal)
        tools = builtin_tools(profile, directory, sandbox=sandbox, memory=memory, sessions=sessions)
        router = await asyncio.to_thread(parts.router)
        route = RouteRequest(
            principal=job.principal,
            workspace=job.workspace,
            request_id=job.request_id,
            job_id=job.id,
        )
        runs, audit = parts.runs(), parts.audit()
        loop: AgentLoop | None = None

        def save() -> None:
            if loop is not None:
                stored = runs.save(
                    job.id, profile.name, loop.transcript, only_if=lambda s: holds_lease(s, job)
                )
                if not stored:
                    log.warning("transcript of a stale attempt not kept", extra={"jobId": job.id})

        async with contextlib.AsyncExitStack() as servers:
            sources: list[ToolSource] = []
            if profile.mcp_servers:
                from ember.agents.mcp import open_mcp_servers  # the SDK only when needed

                opened = open_mcp_servers(profile, directory, sandbox=sandbox)
                for connection in await servers.enter_async_context(opened):
                    names = [tool.name for tool in await connection.tools()]
                    await context.log("mcp server ready", server=connection.name, tools=names)
                    sources.append(connection)
            loop = AgentLoop(
                router.chat,
                tools,
                profile,
                _Persisting(context, save, audit),
                route,
                cost=lambda completion: router.cost(completion.provider, completion.usage),
                sources=sources,
                tracer=parts.tracer,
                capture_content=parts.capture_content,
                metrics=parts.metrics,
            )
            try:
                transcript = await loop.run(payload.task)
            finally:  # also on cancel: the partial transcript is kept
                with contextlib.suppress(Exception):
                    await asyncio.shield(asyncio.to_thread(save))
        transcript.raise_for_status()
        return _result(transcript)

    def _keep_artifacts(job: JobRecord, directory: Path) -> None:
        try:
            collected = collect(directory, parts.artifact_limits)
            if not parts.artifacts().save(job, collected.kept):
                log.warning("files of a stale attempt not kept", extra={"jobId": job.id})
            elif collected.dropped:
                parts.runs().note_dropped(job.id, collected.dropped)
        finally:
            shutil.rmtree(directory, ignore_errors=True)

    return JobKind(
        "agent",
        AgentInput,
        run,
        "Run an agent profile on a task: tools in a sandbox, every step streamed, the "
        "transcript and the files it leaves kept with the job.",
        scopes=frozenset({Scope.AGENTS_RUN, Scope.MODELS_USE}),
    )


def _result(transcript: Transcript) -> dict[str, Any]:
    summary = transcript.to_dict()
    return {
        "status": summary["status"],
        "answer": summary["answer"],
        "usage": summary["usage"],
        "cost_usd": summary["cost_usd"],
        "steps": len(summary["steps"]),
        "duration_s": summary["duration_s"],
    }
