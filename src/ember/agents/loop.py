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

Spans (GenAI conventions): the run is ``invoke_agent {profile}`` (``gen_ai.agent.name``,
``gen_ai.request.model``, ``ember.agent.isolation``; at its end ``ember.agent.steps``,
``ember.agent.outcome``, ``gen_ai.usage.*``; an error status unless completed), each step a child
``step {n}`` holding the router's model call span and one ``execute_tool {tool}`` per call
(``gen_ai.tool.*``; a failed call has ``error.type``, a denied one (:data:`DENIED`) an event
``denied`` with the reason). Tool arguments and results go on spans only with
``capture_content``; otherwise just their sizes (``ember.tool.arguments_chars``,
``ember.tool.result_chars``).

Metrics: each run that ends counts in ``ember_agent_runs_total`` by its status, each model
answer in ``ember_agent_steps_total``, each tool call in ``ember_agent_tool_calls_total`` by
tool and outcome (``ok`` or the result's code) and, when denied, ``ember_agent_denials_total``
by tool. The tool label is a name the run offered the model, or ``unknown`` (a model may
call any name).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry.trace import NoOpTracer, Span, Status, StatusCode, Tracer

from ember.agents.policy import AgentProfile
from ember.agents.protocol import ChatFn, EventSink, ToolSource
from ember.agents.tools import ToolErrorCode, ToolRegistry, ToolResult
from ember.agents.transcript import Limit, Step, Transcript
from ember.chat import ChatMessage, Completion, GenerationOptions, ToolCall
from ember.errors import AgentLimitExceeded, BudgetExceeded, EmberError, ValidationFailed
from ember.observability.metrics import Metrics, NoMetrics
from ember.observability.tracing import span
from ember.providers.router import RouteRequest

__all__ = ["DENIED", "AgentLoop", "NullEvents"]

log = logging.getLogger("ember.agents.loop")

EVENT_TEXT_CHARS = 1000
"""The most characters of a tool's arguments or result put in one event."""
DENIED = frozenset({"policy_denied", ToolErrorCode.UNKNOWN_TOOL})
"""Tool-result codes that are denials: the policy refused the call, or the profile does not
allow that tool."""
REASON_CHARS = 500
"""The most characters of a failed tool call's message put on its span."""


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
    measures durations; ``tracer`` makes the run's spans, with tool arguments and results on
    them only when ``capture_content``; ``metrics`` records the run's counts (see the module).
    Single use: build one loop per run.

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
        tracer: Tracer | None = None,
        capture_content: bool = False,
        metrics: Metrics | None = None,
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
        self._tracer = tracer or NoOpTracer()
        self._capture = capture_content
        self._metrics: Metrics = metrics or NoMetrics()
        self._extensions: set[str] = set()
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
        profile = self._profile
        attributes = {
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": profile.name,
            "gen_ai.request.model": profile.model,
            "ember.agent.isolation": profile.isolation,
        }
        with span(self._tracer, f"invoke_agent {profile.name}", attributes=attributes) as current:
            try:
                return await self._run(task)
            finally:
                self._ended(current)
                self._metrics.inc("ember_agent_runs_total", outcome=self.transcript.status)

    def _ended(self, current: Span) -> None:
        """Put how the run ended on its span (a raised error is the span's own)."""
        t = self.transcript
        current.set_attribute("ember.agent.steps", len(t.steps))
        current.set_attribute("ember.agent.outcome", t.status)
        if t.limit is not None:
            current.set_attribute("ember.agent.limit", t.limit)
        if t.steps:
            usage = t.usage
            current.set_attribute("gen_ai.usage.input_tokens", usage.prompt_tokens)
            current.set_attribute("gen_ai.usage.output_tokens", usage.completion_tokens)
        if t.error is not None:
            current.set_attribute("error.type", str(t.error["code"]))
            current.set_status(Status(StatusCode.ERROR, str(t.error["detail"])[:REASON_CHARS]))

    async def _run(self, task: str | Sequence[ChatMessage]) -> Transcript:
        t = self.transcript
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
        extensions: set[str] = set()
        for source in self._sources:
            for tool in await source.tools():
                if tool.name in registry:
                    log.warning("MCP server %s: tool %s is taken; left out", source.name, tool.name)
                    continue
                registry.add(tool)
                extensions.add(tool.name)
        self._extensions = extensions
        return registry

    async def _steps(self) -> None:
        for number in range(1, self._profile.limits.max_steps + 1):
            with span(self._tracer, f"step {number}", attributes={"ember.agent.step": number}):
                done, stop = await self._step(number)
            if stop is not None:
                raise stop
            if done:
                return

    async def _step(self, number: int) -> tuple[bool, _Stop | None]:
        """One model call and its tool calls: whether the run is done, or the limit that
        stops it before the tools ran."""
        t = self.transcript
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
        self._metrics.inc("ember_agent_steps_total")
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
            return True, None
        stop = self._check(number)
        if stop is not None:
            return False, stop
        for call in calls:
            result = await self._call(registry, number, call)
            step.tool_calls.append(result.to_dict())
            t.messages.append(result.message())
        return False, None

    def _check(self, number: int) -> _Stop | None:
        """The limit that stops the run before tools whose results no further call could
        read, or ``None``."""
        limits, t = self._profile.limits, self.transcript
        if number >= limits.max_steps:
            return _Stop("steps", limits.max_steps)
        if limits.max_tokens is not None and t.usage.total_tokens >= limits.max_tokens:
            return _Stop("tokens", limits.max_tokens)
        if limits.max_cost_usd is not None and t.cost_usd >= limits.max_cost_usd:
            return _Stop("cost", limits.max_cost_usd)
        return None

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
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": call.name,
            "gen_ai.tool.call.id": call.id,
            "gen_ai.tool.type": "extension" if call.name in self._extensions else "function",
            "ember.tool.arguments_chars": len(call.raw_arguments),
        }
        if self._capture:
            attributes["gen_ai.tool.call.arguments"] = call.raw_arguments
        with span(self._tracer, f"execute_tool {call.name}", attributes=attributes) as current:
            result = await registry.call(call)
            self._traced(current, result)
        tool = call.name if call.name in registry else "unknown"
        outcome = result.code or "ok"
        self._metrics.inc("ember_agent_tool_calls_total", tool=tool, outcome=outcome)
        if result.code in DENIED:
            self._metrics.inc("ember_agent_denials_total", tool=tool)
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

    def _traced(self, current: Span, result: ToolResult) -> None:
        """Put ``result`` on its call's span: its size (or itself), and how it failed."""
        current.set_attribute("ember.tool.result_chars", len(result.content))
        if self._capture:
            current.set_attribute("gen_ai.tool.call.result", result.content)
        if result.code is None:
            return
        reason = _reason(result)
        current.set_attribute("error.type", result.code)
        current.set_status(Status(StatusCode.ERROR, reason))
        if result.code in DENIED:
            current.add_event("denied", {"error.type": result.code, "ember.reason": reason})


def _reason(result: ToolResult) -> str:
    """The message of a failed call's result (``{"error": {"code", "message"}}``)."""
    try:
        message = json.loads(result.content)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = result.content
    return str(message)[:REASON_CHARS]
