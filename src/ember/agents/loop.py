"""The agent loop: ask the model, run the tools it calls, give it their results, repeat.

:meth:`AgentLoop.run` sends the messages and the allowed tools' definitions through the chat
(the router's, with the job's :class:`~ember.providers.router.RouteRequest`, so budgets,
fallback and usage rows apply as for any call), runs each tool call of an answer in order
(every call of a parallel turn), appends one ``tool`` message per call, and asks again, until
an answer has no tool calls (``completed``) or a limit stops it (``limit_exceeded``).

Tools: the built-in ``tools`` are kept to the profile's ``tools``; the tools of each
:class:`~ember.agents.protocol.ToolSource` (an MCP server) are offered when the profile lists
the source in ``mcp_servers``, all of them, asked anew before every model call (so a server
whose list changed offers its new tools from the next call on). A source's tool whose name is
taken already (by a built-in tool or an earlier source) is left out.

Limits (the profile's :class:`~ember.agents.policy.AgentLimits`): ``wall_s`` bounds the whole
run, model calls and tools included; after each answer that asks for tools, the run stops
before running them when it is at ``max_steps`` model calls, or has used ``max_tokens``
(the sum of the calls' usage) or ``max_cost_usd`` (priced by the injected ``cost``). A final
answer is kept even when its own call went over. The router's
:class:`~ember.errors.BudgetExceeded` ends the run as ``budget_exceeded``; any other error of
a model call ends it as ``failed`` and is raised; cancellation ends it as ``cancelled`` and
propagates. In every case :attr:`AgentLoop.transcript` holds what happened so far.

Events (to the :class:`~ember.agents.protocol.EventSink`): ``log`` ``"agent step"`` per model
answer, ``"tool call"`` and ``"tool result"`` per tool call, ``token`` with the final answer
text, and ``log`` ``"agent finished"`` at the end (not when cancelled).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from ember.agents.policy import AgentProfile
from ember.agents.protocol import ChatFn, EventSink, ToolSource
from ember.agents.tools import ToolRegistry, ToolResult
from ember.agents.transcript import Limit, Step, Transcript
from ember.chat import ChatMessage, Completion, GenerationOptions, ToolCall
from ember.errors import AgentLimitExceeded, BudgetExceeded, EmberError, ValidationFailed
from ember.providers.router import RouteRequest

__all__ = ["AgentLoop", "NullEvents"]

log = logging.getLogger("ember.agents.loop")

EVENT_TEXT_CHARS = 1000
"""The most characters of a tool's arguments or result put in one event."""


class NullEvents:
    """An :class:`EventSink` that drops everything."""

    async def log(self, message: str, **fields: Any) -> None:
        return None

    async def token(self, text: str) -> None:
        return None


class _Stop(Exception):
    def __init__(self, limit: Limit, value: float) -> None:
        self.limit, self.value = limit, value


def _cut(text: str, limit: int = EVENT_TEXT_CHARS) -> str:
    return text if len(text) <= limit else f"{text[:limit]}…"


class AgentLoop:
    """One agent run of ``profile`` with ``tools`` (kept to the profile's allow-list) and
    the tools of ``sources`` (kept to the profile's ``mcp_servers``).

    ``chat`` is :meth:`Router.chat` or anything with its signature; ``route`` says who asks
    (budgets, usage rows); ``options`` are the base generation options of every call
    (``tools`` is set here); ``cost`` prices one answer in USD (``None``: every call is free,
    so ``max_cost_usd`` never stops a run; the router's budgets still apply); ``clock``
    measures durations. Single use: build one loop per run.

    :raises ValidationFailed: the profile allows a tool ``tools`` lacks, or lists an MCP
        server ``sources`` lacks.
    """

    def __init__(
        self,
        chat: ChatFn,
        tools: ToolRegistry,
        profile: AgentProfile,
        events: EventSink | None = None,
        route: RouteRequest | None = None,
        *,
        options: GenerationOptions | None = None,
        cost: Callable[[Completion], float] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sources: Sequence[ToolSource] = (),
    ) -> None:
        servers = [server.name for server in profile.mcp_servers]
        missing = [name for name in servers if name not in {s.name for s in sources}]
        if missing:
            raise ValidationFailed(
                f"MCP server(s) {', '.join(missing)} of the profile were not opened",
                errors=[
                    {"path": "mcp_servers", "message": f"not opened: {m!r}", "type": "value"}
                    for m in missing
                ],
            )
        self._chat = chat
        self._tools = tools.restricted(profile.tools)
        self._sources = [source for source in sources if source.name in servers]
        self._profile = profile
        self._events: EventSink = events or NullEvents()
        self._route = route or RouteRequest()
        self._options = options or GenerationOptions()
        self._cost = cost
        self._clock = clock
        self._seen_ids: set[str] = set()
        self.transcript = Transcript(profile=profile.name, model=profile.model)
        """The run so far; updated after every answer and tool result."""

    async def run(self, task: str | Sequence[ChatMessage]) -> Transcript:
        """Run the agent on ``task`` (a user message, or the opening messages) and return
        the transcript (status ``completed``, ``limit_exceeded`` or ``budget_exceeded``).

        :raises EmberError: a model call failed otherwise (the transcript says ``failed``).
        :raises asyncio.CancelledError: the run was cancelled (``cancelled``).
        :raises RuntimeError: the loop already ran.
        """
        t = self.transcript
        if t.status != "pending":
            raise RuntimeError("an AgentLoop runs once; build another")
        t.status = "running"
        if self._profile.system_prompt:
            t.messages.append(ChatMessage(role="system", content=self._profile.system_prompt))
        if isinstance(task, str):
            t.messages.append(ChatMessage(role="user", content=task))
        else:
            t.messages.extend(task)
        started = self._clock()
        limits = self._profile.limits
        try:
            try:
                async with asyncio.timeout(limits.wall_s) as scope:
                    await self._steps()
            except TimeoutError:
                if not scope.expired():
                    raise
                raise _Stop("wall_time", limits.wall_s) from None
        except _Stop as stop:
            detail = f"the run stopped at its {stop.limit} limit ({stop.value:g})"
            t.limit = stop.limit
            t.fail(
                "limit_exceeded",
                AgentLimitExceeded(detail, extra={"limit": stop.limit, "value": stop.value}),
            )
        except BudgetExceeded as exc:
            t.fail("budget_exceeded", exc)
        except asyncio.CancelledError:
            t.status = "cancelled"
            t.duration_s = self._clock() - started
            raise
        except Exception as exc:
            error = exc if isinstance(exc, EmberError) else EmberError(f"{type(exc).__name__}")
            t.fail("failed", error)
            t.duration_s = self._clock() - started
            await self._finished()
            raise
        t.duration_s = self._clock() - started
        await self._finished()
        return t

    async def _finished(self) -> None:
        t = self.transcript
        usage = t.usage
        await self._events.log(
            "agent finished",
            status=t.status,
            limit=t.limit,
            error=t.error,
            steps=len(t.steps),
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            cost_usd=t.cost_usd,
            duration_s=round(t.duration_s, 3),
        )

    async def _registry(self) -> ToolRegistry:
        """The tools of the coming model call: the built-in ones, then each source's."""
        if not self._sources:
            return self._tools
        registry = ToolRegistry(self._tools, max_result_chars=self._tools.max_result_chars)
        for source in self._sources:
            for tool in await source.tools():
                if tool.name in registry:
                    log.warning("MCP server %s: tool %s is taken; left out", source.name, tool.name)
                    continue
                registry.add(tool)
        return registry

    async def _steps(self) -> None:
        t = self.transcript
        limits = self._profile.limits
        for number in range(1, limits.max_steps + 1):
            registry = await self._registry()
            options = dataclasses.replace(self._options, tools=registry.definitions() or None)
            started = self._clock()
            answer = await self._chat(self._profile.model, list(t.messages), options, self._route)
            calls = self._named(number, answer.tool_calls or [])
            step = Step(
                number,
                answer.provider,
                answer.model,
                answer.finish_reason,
                answer.usage,
                self._cost(answer) if self._cost is not None else 0.0,
                self._clock() - started,
            )
            t.steps.append(step)
            t.messages.append(
                ChatMessage(role="assistant", content=answer.text, tool_calls=calls or None)
            )
            await self._events.log(
                "agent step",
                step=number,
                provider=answer.provider,
                model=answer.model,
                finish_reason=answer.finish_reason,
                prompt_tokens=answer.usage.prompt_tokens,
                completion_tokens=answer.usage.completion_tokens,
                text=_cut(answer.text),
                tool_calls=[call.name for call in calls],
            )
            if not calls:
                t.status, t.answer = "completed", answer.text
                if answer.text:
                    await self._events.token(answer.text)
                return
            self._check(number)
            for call in calls:
                result = await self._call(registry, number, call)
                step.tool_calls.append(result.to_dict())
                t.messages.append(result.message())

    def _check(self, number: int) -> None:
        """Stop before running tools whose results no further call could read."""
        limits, t = self._profile.limits, self.transcript
        if number >= limits.max_steps:
            raise _Stop("steps", limits.max_steps)
        if limits.max_tokens is not None and t.usage.total_tokens >= limits.max_tokens:
            raise _Stop("tokens", limits.max_tokens)
        if limits.max_cost_usd is not None and t.cost_usd >= limits.max_cost_usd:
            raise _Stop("cost", limits.max_cost_usd)

    def _named(self, number: int, calls: list[ToolCall]) -> list[ToolCall]:
        """The calls with an id each, unique in the run (some servers send none, or repeat
        them); the ids given are kept where they are usable."""
        named = []
        for index, call in enumerate(calls):
            if not call.id or call.id in self._seen_ids:
                call = dataclasses.replace(call, id=f"call_{number}_{index}")
            self._seen_ids.add(call.id)
            named.append(call)
        return named

    async def _call(self, registry: ToolRegistry, number: int, call: ToolCall) -> ToolResult:
        arguments: object = (
            call.arguments if call.arguments is not None else _cut(call.raw_arguments)
        )
        await self._events.log(
            "tool call", step=number, call_id=call.id, tool=call.name, arguments=arguments
        )
        result = await registry.call(call)
        await self._events.log(
            "tool result",
            step=number,
            call_id=call.id,
            tool=call.name,
            ok=result.ok,
            code=result.code,
            duration_s=round(result.duration_s, 3),
            content=_cut(result.content),
        )
        return result
