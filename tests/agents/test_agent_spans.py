"""The spans of an agent run, read back from the store of recent traces: ``invoke_agent`` over
its steps, each step over the router's model call and one ``execute_tool`` per tool call, a
command tool over the real bubblewrap sandbox's ``sandbox command`` (a session, as the
``agent`` job runs them) or ``sandbox run`` (one-shot); denials as events; tool arguments and
results only with ``capture_content``; the ``traceparent`` an MCP server over HTTP receives;
and the ``vm run`` span of a VM run refused before anything boots."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from ember.agents import AgentLoop, AgentProfile, builtin_tools
from ember.agents.mcp import open_mcp_servers
from ember.chat import ChatMessage
from ember.config import RouterConfig, TracingConfig
from ember.errors import SandboxUnavailable, VMUnavailable
from ember.jobs.agent_kind import AgentInput, AgentParts, agent_kind
from ember.observability.traces import RecentTraces, SpanRecord
from ember.observability.tracing import Tracing, extract, span, trace_id
from ember.providers import OpenAIProvider
from ember.providers.router import Router
from ember.sandbox import BubblewrapSandbox
from ember.vm.runner import VMLimits, VMRunner
from tests.agents.conftest import MODEL, Events
from tests.agents.mcp_server import build_server, http_app
from tests.fakes.scripted_chat_fake import ScriptedCall, ScriptedChatServer, Turn
from tests.fakes.server import ThreadedFakeServer

MARKER = "spans-marker-4a7c"
"""Written in a tool's arguments and so in its result: it must show on no span unless
contents are captured."""
COMMAND = {"command": f"echo {MARKER}; exit 3"}


class Traced:
    """A :class:`Tracing` into a store of recent traces, and the spans of one trace."""

    def __init__(self) -> None:
        self.store = RecentTraces()
        self.tracing = Tracing(TracingConfig(), "test", store=self.store)
        self.tracer = self.tracing.tracer("tests.agents")

    def spans(self, trace: str | None) -> list[SpanRecord]:
        assert trace is not None
        assert self.tracing.flush()
        return self.store.get(trace)


@pytest.fixture(scope="module")
def traced() -> Iterator[Traced]:
    found = Traced()
    yield found
    found.tracing.shutdown()


@pytest.fixture(scope="module")
def bubblewrap(traced: Traced) -> BubblewrapSandbox:
    sandbox = BubblewrapSandbox(tracer=traced.tracing.tracer("ember.sandbox"))
    try:
        sandbox.check()
    except SandboxUnavailable as exc:
        pytest.skip(f"the bubblewrap sandbox cannot run here: {exc.detail}")
    return sandbox


async def _no_sleep(_: float) -> None:
    return None


@pytest.fixture
async def router(scripted: ScriptedChatServer, traced: Traced) -> AsyncIterator[Router]:
    provider = OpenAIProvider("scripted", scripted.base_url, api_key="k", timeout_s=5)
    router = Router(
        {"scripted": provider},
        RouterConfig(retry_attempts=1, default_provider=None, aliases={}),
        sleep=_no_sleep,
        tracer=traced.tracing.tracer("ember.providers"),
    )
    yield router
    await router.aclose()


def one(spans: list[SpanRecord], name: str) -> SpanRecord:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, f"{name!r} in {[s.name for s in spans]}"
    return found[0]


def children(spans: list[SpanRecord], parent: SpanRecord) -> list[str]:
    return [s.name for s in spans if s.parent_id == parent.span_id]


def result_of(messages: list[ChatMessage], call_id: str) -> str:
    (found,) = [m.content for m in messages if m.role == "tool" and m.tool_call_id == call_id]
    assert isinstance(found, str)
    return found


def shows(record: SpanRecord, text: str) -> bool:
    """Whether ``text`` is in any attribute or event attribute of ``record``."""
    values = [*record.attributes.values()]
    values += [v for event in record.events for v in event["attributes"].values()]
    return any(text in str(value) for value in values)


SCRIPT = [
    Turn(
        calls=(
            ScriptedCall("run_command", COMMAND, id="c1"),
            ScriptedCall("write_file", {"path": "x", "content": MARKER}, id="c2"),
            ScriptedCall("read_file", {"path": "../outside"}, id="c3"),
        ),
        usage=(10, 5),
    ),
    Turn("done", usage=(20, 3)),
]
PROFILE = AgentProfile(name="spanner", model=MODEL, tools=("run_command", "read_file"))


async def test_a_run_is_a_tree_of_steps_tool_calls_and_sandbox_commands(
    bubblewrap: BubblewrapSandbox,
    router: Router,
    scripted: ScriptedChatServer,
    traced: Traced,
    workspace: Path,
) -> None:
    scripted.load(SCRIPT)
    async with contextlib.AsyncExitStack() as sessions:
        tools = builtin_tools(PROFILE, workspace, sandbox=bubblewrap, sessions=sessions)
        loop = AgentLoop(router.chat, tools, PROFILE, tracer=traced.tracer)
        with span(traced.tracer, "test root"):
            trace = trace_id()
            transcript = await loop.run("go")
    assert transcript.status == "completed"
    spans = traced.spans(trace)

    root = one(spans, "test root")
    agent = one(spans, "invoke_agent spanner")
    assert agent.parent_id == root.span_id and agent.status == "unset"
    assert agent.attributes == {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": "spanner",
        "gen_ai.request.model": MODEL,
        "ember.agent.isolation": "sandbox",
        "ember.agent.steps": 2,
        "ember.agent.outcome": "completed",
        "gen_ai.usage.input_tokens": 30,
        "gen_ai.usage.output_tokens": 8,
    }
    assert children(spans, agent) == ["step 1", "step 2"]
    first, second = one(spans, "step 1"), one(spans, "step 2")
    assert first.attributes["ember.agent.step"] == 1
    assert children(spans, first) == [
        f"chat {MODEL}",
        "execute_tool run_command",
        "execute_tool write_file",
        "execute_tool read_file",
    ]
    assert children(spans, second) == [f"chat {MODEL}"]

    command = one(spans, "execute_tool run_command")
    raw = json.dumps(COMMAND)
    assert command.status == "unset" and command.events == []
    assert command.attributes == {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "run_command",
        "gen_ai.tool.call.id": "c1",
        "gen_ai.tool.type": "function",
        "ember.tool.arguments_chars": len(raw),
        "ember.tool.result_chars": len(result_of(transcript.messages, "c1")),
    }
    assert children(spans, command) == ["sandbox command"]
    sandboxed = one(spans, "sandbox command")
    assert sandboxed.attributes["ember.sandbox.tier"] == "bubblewrap"
    assert sandboxed.attributes["ember.sandbox.exit_code"] == 3
    assert "ember.sandbox.killed" not in sandboxed.attributes

    for name, code, reason in [
        ("write_file", "unknown_tool", "unknown tool 'write_file'"),
        ("read_file", "policy_denied", "../outside"),
    ]:
        denied = one(spans, f"execute_tool {name}")
        assert (denied.status, denied.attributes["error.type"]) == ("error", code)
        (event,) = denied.events
        assert event["name"] == "denied" and event["attributes"]["error.type"] == code
        assert reason in event["attributes"]["ember.reason"]

    assert not any(shows(record, MARKER) for record in spans)
    assert not any("gen_ai.tool.call.arguments" in record.attributes for record in spans)


async def test_captured_contents_go_on_the_tool_span_and_a_one_shot_run_is_sandbox_run(
    bubblewrap: BubblewrapSandbox,
    router: Router,
    scripted: ScriptedChatServer,
    traced: Traced,
    workspace: Path,
) -> None:
    scripted.load(SCRIPT)
    tools = builtin_tools(PROFILE, workspace, sandbox=bubblewrap)
    loop = AgentLoop(router.chat, tools, PROFILE, tracer=traced.tracer, capture_content=True)
    with span(traced.tracer, "test root"):
        trace = trace_id()
        await loop.run("go")
    spans = traced.spans(trace)
    command = one(spans, "execute_tool run_command")
    assert command.attributes["gen_ai.tool.call.arguments"] == json.dumps(COMMAND)
    result = json.loads(command.attributes["gen_ai.tool.call.result"])
    assert (result["exit_code"], result["stdout"]) == (3, f"{MARKER}\n")
    assert children(spans, command) == ["sandbox run"]
    run = one(spans, "sandbox run")
    assert run.attributes["ember.sandbox.tier"] == "bubblewrap"
    assert run.attributes["ember.sandbox.exit_code"] == 3
    assert run.attributes["ember.sandbox.wall_s"] == PROFILE.sandbox.wall_s
    denied = one(spans, "execute_tool write_file")
    assert MARKER in denied.attributes["gen_ai.tool.call.arguments"]


async def test_a_run_stopped_by_a_limit_ends_its_span_with_the_limit(
    router: Router, scripted: ScriptedChatServer, traced: Traced, workspace: Path
) -> None:
    scripted.load([Turn(calls=(ScriptedCall("read_file", {"path": "a"}),))])
    profile = AgentProfile(model=MODEL, tools=("read_file",), limits={"max_steps": 1})
    tools = builtin_tools(profile, workspace)
    with span(traced.tracer, "test root"):
        trace = trace_id()
        transcript = await AgentLoop(router.chat, tools, profile, tracer=traced.tracer).run("x")
    assert transcript.status == "limit_exceeded"
    spans = traced.spans(trace)
    agent = one(spans, "invoke_agent default")
    assert agent.status == "error"
    assert agent.attributes["error.type"] == "agent_limit_exceeded"
    assert agent.attributes["ember.agent.outcome"] == "limit_exceeded"
    assert agent.attributes["ember.agent.limit"] == "steps"
    step = one(spans, "step 1")
    assert step.status == "unset" and children(spans, step) == [f"chat {MODEL}"]


class Stub:
    """The stores of an ``agent`` job that this test does not look into."""

    def __init__(self, agent: AgentProfile) -> None:
        self.agent = agent

    def in_workspace(self, workspace: str) -> Stub:
        return self

    def get(self, name: str) -> Any:
        return SimpleNamespace(profile=self.agent)

    def save(self, *args: Any, **options: Any) -> bool:
        return True

    def note_dropped(self, *args: Any) -> None:
        return None

    def append(self, entry: Any) -> None:
        return None


async def test_an_agent_job_traces_its_run_with_the_parts_tracer(
    bubblewrap: BubblewrapSandbox,
    router: Router,
    scripted: ScriptedChatServer,
    traced: Traced,
    events: Events,
    tmp_path: Path,
) -> None:
    stub = Stub(PROFILE)

    def unused() -> Any:
        raise AssertionError("not used by this run")

    parts = AgentParts(
        profiles=lambda: stub,
        runs=lambda: stub,
        artifacts=lambda: stub,
        router=lambda: router,
        memory=unused,
        sandbox=lambda: bubblewrap,
        tokens=lambda: stub,
        audit=lambda: stub,
        work_root=tmp_path / "work",
        tracer=traced.tracer,
        capture_content=True,
    )
    scripted.load(SCRIPT)
    with span(traced.tracer, "job agent"):
        trace = trace_id()
        result = await agent_kind(parts).handler(events.context, AgentInput(agent="x", task="t"))
    assert result["status"] == "completed"
    spans = traced.spans(trace)
    agent = one(spans, "invoke_agent spanner")
    assert agent.parent_id == one(spans, "job agent").span_id
    command = one(spans, "execute_tool run_command")
    assert "gen_ai.tool.call.arguments" in command.attributes
    assert children(spans, command) == ["sandbox command"]


class HeaderServer(ThreadedFakeServer):
    """The test MCP server over Streamable HTTP, keeping each request's ``traceparent``."""

    lifespan = "on"

    def __init__(self) -> None:
        self.server, _ = build_server()
        self.traceparents: list[str] = []
        self._init_server("MCP header server")

    def _asgi(self) -> Any:
        app = http_app(self.server)

        async def keeping(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "http":
                headers = dict(scope["headers"])
                if b"traceparent" in headers:
                    self.traceparents.append(headers[b"traceparent"].decode())
            await app(scope, receive, send)

        return keeping


async def test_an_http_mcp_server_gets_the_tool_call_s_traceparent(
    router: Router, scripted: ScriptedChatServer, traced: Traced, workspace: Path
) -> None:
    server = HeaderServer()
    server.start()
    try:
        profile = AgentProfile.model_validate(
            {
                "name": "remote-user",
                "model": MODEL,
                "egress_hosts": [f"127.0.0.1:{server.port}"],
                "mcp_servers": [{"name": "remote", "url": f"http://127.0.0.1:{server.port}/mcp"}],
            }
        )
        scripted.load(
            [
                Turn(calls=(ScriptedCall("remote__echo", {"text": "hi"}, id="e1"),)),
                Turn("echoed"),
            ]
        )
        with span(traced.tracer, "test root"):
            trace = trace_id()
            async with open_mcp_servers(profile, workspace) as sources:
                server.traceparents.clear()
                loop = AgentLoop(
                    router.chat,
                    builtin_tools(profile, workspace),
                    profile,
                    sources=sources,
                    tracer=traced.tracer,
                )
                transcript = await loop.run("echo")
    finally:
        server.stop()
    assert transcript.status == "completed"
    spans = traced.spans(trace)
    call = one(spans, "execute_tool remote__echo")
    assert call.attributes["gen_ai.tool.type"] == "extension"
    assert call.status == "unset"
    parents = {(p.split("-")[1], p.split("-")[2]) for p in server.traceparents}
    assert (trace, call.span_id) in parents
    assert all(extract({"traceparent": p}) is not None for p in server.traceparents)


async def test_a_vm_run_is_one_span_with_its_shape_even_when_refused(
    traced: Traced, tmp_path: Path
) -> None:
    def no_image() -> Any:
        raise AssertionError("nothing is read before the memory check")

    runner = VMRunner(
        object(),
        no_image,
        tmp_path / "vms",
        accel="tcg",
        free_memory_mib=lambda: 16,
        tracer=traced.tracer,
    )
    limits = VMLimits(vcpus=2, memory_mib=512, disk_mib=32, timeout_s=9.0)
    with span(traced.tracer, "test root"):
        trace = trace_id()
        with pytest.raises(VMUnavailable):
            await runner.run(["true"], tmp_path, limits)
    run = one(traced.spans(trace), "vm run")
    assert (run.status, run.attributes["error.type"]) == ("error", "vm_unavailable")
    assert {k: v for k, v in run.attributes.items() if k.startswith("ember.vm.")} == {
        "ember.vm.vcpus": 2,
        "ember.vm.memory_mib": 512,
        "ember.vm.disk_mib": 32,
        "ember.vm.timeout_s": 9.0,
    }
