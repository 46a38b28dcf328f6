"""MCP tool servers (``ember.agents.mcp``) against a real server written with the SDK
(``tests/agents/mcp_server.py``): over stdio inside the real bubblewrap sandbox and over
Streamable HTTP on a loopback port. Tools listed (pages, cursors, the cache and
``list_changed``), called, their arguments checked; results, failures and dying servers as
tool errors; the egress rules (nothing sent to a refused host, no DNS query: names resolve
through a fake resolver); the processes gone after close and cancel; the loop over the
scripted chat fake, and the ``agent`` job kind, end to end."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import anyio
import httpx2
import pytest
from mcp import types
from mcp.shared.exceptions import MCPError
from pydantic import ValidationError

from ember.agents import (
    AgentLoop,
    AgentProfile,
    ProfileOverrides,
    ToolRegistry,
    builtin_tools,
    narrow,
)
from ember.agents.mcp import (
    TRANSLATED,
    open_mcp_servers,
    render_result,
    translating,
)
from ember.agents.tools import SchemaTool, ToolErrorCode
from ember.chat import ToolCall
from ember.config.tracing import TracingConfig
from ember.errors import (
    BadRequest,
    McpServerFailed,
    PolicyDenied,
    SandboxUnavailable,
    ValidationFailed,
)
from ember.jobs.agent_kind import AgentInput, AgentParts, agent_kind
from ember.observability.traces import RecentTraces
from ember.observability.tracing import Tracing, span
from ember.providers.router import Router
from ember.sandbox import BubblewrapSandbox
from ember.testing._waiting import eventually
from ember.testing.sandbox import host_processes_with
from tests.agents.conftest import MODEL, Events
from tests.agents.mcp_server import PNG, McpHttpServer
from tests.fakes.scripted_chat_fake import ScriptedCall, ScriptedChatServer, Turn

SERVER_SCRIPT = Path(__file__).resolve().with_name("mcp_server.py")
TOOLS = [
    "add",
    "echo",
    "write_note",
    "whoami",
    "fail",
    "picture",
    "nap",
    "die",
    "grow",
    "meta",
    "stats",
]
"""The test server's tools that ember offers (``bad.name`` is left out)."""


def python_binds() -> list[str]:
    """What the sandboxed server needs of the host: this virtualenv, the interpreter it was
    made from (unless under ``/usr``, which every sandbox sees) and the server's directory."""
    found: list[str] = []
    for path in (Path(sys.prefix), Path(sys.base_prefix), SERVER_SCRIPT.parent):
        resolved = path.resolve()
        if resolved == Path("/usr") or Path("/usr") in resolved.parents:
            continue
        if not any(resolved == Path(kept) or Path(kept) in resolved.parents for kept in found):
            found.append(str(resolved))
    return found


def stdio_server(marker: str, name: str = "local", **fields: Any) -> dict[str, Any]:
    python = Path(sys.prefix).resolve() / "bin" / "python"
    return {
        "name": name,
        "command": str(python),
        "args": [str(SERVER_SCRIPT), "--stdio", marker],
        "read_only_paths": python_binds(),
        **fields,
    }


def profile(**fields: Any) -> AgentProfile:
    return AgentProfile.model_validate({"model": MODEL, **fields})


@pytest.fixture(scope="module")
def bubblewrap() -> BubblewrapSandbox:
    sandbox = BubblewrapSandbox()
    try:
        sandbox.check()
    except SandboxUnavailable as exc:
        pytest.skip(f"no sandbox here: {exc}")
    return sandbox


@pytest.fixture
def marker() -> Iterator[str]:
    """A word on the server's command line, to find its processes on the host."""
    word = f"ember-mcp-test-{uuid.uuid4().hex}"
    yield word
    assert host_processes_with(word) == [], "an MCP server process outlived its test"


@pytest.fixture
def http_server() -> Iterator[McpHttpServer]:
    with McpHttpServer() as server:
        yield server


def call(name: str, arguments: dict[str, Any] | str, id: str = "c1") -> ToolCall:
    if isinstance(arguments, str):
        return ToolCall.parse(id, name, arguments)
    return ToolCall.of(id, name, arguments)


async def gone(marker: str) -> None:
    async def no_process() -> bool:
        return host_processes_with(marker) == []

    await eventually(no_process, "the MCP server's processes are gone", 10.0)


# -- the edge: errors, results, schemas ----------------------------------------------------


SAMPLES: dict[type[Exception], Exception] = {
    MCPError: MCPError(types.INTERNAL_ERROR, "boom"),
    httpx2.HTTPError: httpx2.ConnectError("refused"),
    OSError: FileNotFoundError(2, "no such file"),
    anyio.ClosedResourceError: anyio.ClosedResourceError(),
    anyio.BrokenResourceError: anyio.BrokenResourceError(),
    anyio.EndOfStream: anyio.EndOfStream(),
    RuntimeError: RuntimeError("Unsupported protocol version from the server: 1999"),
    ValueError: ValueError("a result that breaks the protocol"),
}


@pytest.mark.parametrize("kind", TRANSLATED, ids=lambda kind: kind.__name__)
def test_every_sdk_error_becomes_mcp_server_failed(kind: type[Exception]) -> None:
    sample = SAMPLES[kind]
    assert isinstance(sample, kind)
    with pytest.raises(McpServerFailed) as caught, translating("git", "calling log"):
        raise sample
    assert caught.value.code == "mcp_server_failed" and caught.value.extra == {"server": "git"}
    assert caught.value.detail.startswith("MCP server 'git': calling log failed: ")
    assert caught.value.__cause__ is sample


def test_timeouts_closed_connections_and_groups_say_what_happened() -> None:
    timeout = MCPError(types.REQUEST_TIMEOUT, "Request 'tools/call' timed out")
    with (
        pytest.raises(McpServerFailed, match="did not answer within 2 s"),
        translating("s", "calling nap", timeout_s=2),
    ):
        raise timeout
    with (
        pytest.raises(McpServerFailed, match=r"(?s)connection closed.*stderr ends with: log"),
        translating("s", "calling die", stderr=lambda: "log\nTraceback"),
    ):
        raise MCPError(types.CONNECTION_CLOSED, "Connection closed")
    with (
        pytest.raises(McpServerFailed, match="ConnectError: refused"),
        translating("s", "starting"),
    ):
        raise ExceptionGroup("task group", [httpx2.ConnectError("refused")])
    with pytest.raises(PolicyDenied), translating("s", "starting"):
        raise ExceptionGroup("task group", [PolicyDenied("no")])
    with pytest.raises(asyncio.CancelledError), translating("s", "starting"):
        raise asyncio.CancelledError
    with pytest.raises(KeyError), translating("s", "starting"):
        raise KeyError("a bug is not translated")


def test_results_become_text() -> None:
    blocks = [
        types.TextContent(text="first"),
        types.ImageContent(data="AAAA", mime_type="image/png"),
        types.AudioContent(data="AAAAAAAA", mime_type="audio/wav"),
        types.ResourceLink(uri="file:///a.txt", name="a", mime_type="text/plain"),
        types.EmbeddedResource(
            resource=types.TextResourceContents(uri="file:///b.txt", text="bee")
        ),
        types.EmbeddedResource(
            resource=types.BlobResourceContents(uri="file:///c.bin", blob="AAAA")
        ),
    ]
    text = render_result(types.CallToolResult(content=blocks))
    assert text.splitlines() == [
        "first",
        "[image: image/png, 3 bytes, not shown]",
        "[audio: audio/wav, 6 bytes, not shown]",
        "[resource link: file:///a.txt (text/plain)]",
        "[resource file:///b.txt]",
        "bee",
        "[resource file:///c.bin: unknown type, binary, not shown]",
    ]
    structured = types.CallToolResult(content=[], structured_content={"n": 1})
    assert json.loads(render_result(structured)) == {"n": 1}


async def test_a_schema_tool_checks_arguments_against_its_schema() -> None:
    seen: list[dict[str, Any]] = []

    async def handler(arguments: dict[str, Any]) -> str:
        seen.append(arguments)
        return "ok"

    schema = {
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": {"type": "string", "maxLength": 3}},
        "required": ["a"],
        "additionalProperties": False,
    }
    registry = ToolRegistry([SchemaTool("s__t", "A tool.", schema, handler)])
    assert registry.definitions()[0]["function"]["parameters"] == schema
    good = await registry.call(call("s__t", {"a": 1, "b": "xy"}))
    assert good.ok and good.content == "ok" and seen == [{"a": 1, "b": "xy"}]
    bad = await registry.call(call("s__t", {"a": "1", "b": "long", "c": True}))
    assert bad.code == ToolErrorCode.INVALID_ARGUMENTS and len(seen) == 1
    message = json.loads(bad.content)["error"]["message"]
    assert message.startswith("invalid arguments for s__t: ")
    assert "'c' was unexpected" in message and "a: '1' is not of type 'integer'" in message
    assert "b: 'long' is too long" in message and message.endswith("(parameters: a, b)")
    missing = await registry.call(call("s__t", {}))
    assert "'a' is a required property" in json.loads(missing.content)["error"]["message"]
    remote = {"type": "object", "properties": {"a": {"$ref": "https://schemas.invalid/a.json"}}}
    unresolvable = ToolRegistry([SchemaTool("s__r", "Remote.", remote, handler)])
    refused = await unresolvable.call(call("s__r", {"a": 1}))
    assert (
        refused.code == ToolErrorCode.INVALID_ARGUMENTS and "cannot be applied" in refused.content
    )
    for name, wrong in [
        ("s__t", {"type": "array"}),
        ("s__t", {"type": "object", "properties": {"a": {"type": "no-such-type"}}}),
        ("s.t", schema),
        ("s__" + "t" * 62, schema),
    ]:
        with pytest.raises(ValueError, match="tool"):
            SchemaTool(name, "", wrong, handler)


def test_profiles_check_mcp_servers() -> None:
    assert profile(mcp_servers=[stdio_server("m")]).limits.mcp_timeout_s == 60
    for server in [
        {"name": "x", "url": "http://127.0.0.1:1/mcp", "read_only_paths": ["/opt/x"]},
        {"name": "x", "command": "srv", "read_only_paths": ["relative"]},
        {"name": "x", "command": "srv", "read_only_paths": ["/etc/ssl"]},
        {"name": "x", "command": "srv", "read_only_paths": ["/home/me/.ssh"]},
        {"name": "x", "command": "srv", "read_only_paths": ["/opt/a/../b"]},
        {"name": "x", "url": "http://127.0.0.1:1/mcp"},
    ]:
        with pytest.raises(ValidationError):
            profile(mcp_servers=[server])
    wide = profile(
        egress_hosts=["127.0.0.1:1"],
        mcp_servers=[{"name": "h", "url": "http://127.0.0.1:1/mcp"}, {"name": "s", "command": "x"}],
        limits={"mcp_timeout_s": 5},
    )
    narrowed = narrow(wide, ProfileOverrides(mcp_servers=("s",), limits={"mcp_timeout_s": 1}))
    assert [s.name for s in narrowed.mcp_servers] == ["s"] and narrowed.limits.mcp_timeout_s == 1
    with pytest.raises(PolicyDenied, match=r"limits\.mcp_timeout_s"):
        narrow(wide, ProfileOverrides(limits={"mcp_timeout_s": 10}))
    with pytest.raises(ValidationFailed, match="egress_hosts"):
        narrow(wide, ProfileOverrides(egress_hosts=()))


class FixedSource:
    """A :class:`ToolSource` with fixed tools."""

    def __init__(self, name: str, tools: Sequence[SchemaTool]) -> None:
        self.name = name
        self._tools = list(tools)

    async def tools(self) -> list[SchemaTool]:
        return self._tools


async def test_the_loop_offers_only_sources_the_profile_lists(
    router: Router, scripted: ScriptedChatServer
) -> None:
    async def answer(arguments: dict[str, Any]) -> str:
        return "from s"

    schema = {"type": "object", "properties": {}}
    listed = profile(mcp_servers=[{"name": "s", "command": "x"}])
    with pytest.raises(ValidationFailed, match=r"MCP server\(s\) s of the profile were not opened"):
        AgentLoop(router.chat, ToolRegistry(), listed)
    sources = [
        FixedSource("s", [SchemaTool("s__go", "Go.", schema, answer)]),
        FixedSource("other", [SchemaTool("other__go", "Go.", schema, answer)]),
    ]
    scripted.load([Turn(calls=(ScriptedCall("other__go"),)), Turn(text="done")])
    transcript = await AgentLoop(router.chat, ToolRegistry(), listed, sources=sources).run("go")
    offered = [tool["function"]["name"] for tool in scripted.requests[0]["tools"]]
    assert offered == ["s__go"] and transcript.status == "completed"
    assert transcript.steps[0].tool_calls[0]["code"] == ToolErrorCode.UNKNOWN_TOOL


# -- stdio, inside the sandbox --------------------------------------------------------------


async def test_a_stdio_server_runs_inside_the_sandbox(
    bubblewrap: BubblewrapSandbox,
    workspace: Path,
    marker: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "ember.agents.mcp")
    agent = profile(mcp_servers=[stdio_server(marker)])
    async with open_mcp_servers(agent, workspace, sandbox=bubblewrap) as (local,):
        tools = await local.tools()
        assert [tool.name for tool in tools] == [f"local__{name}" for name in TOOLS]
        assert "'bad.name' left out" in caplog.text
        assert local.list_requests == 3  # 12 tools in pages of 4
        add = next(tool for tool in tools if tool.name == "local__add")
        assert add.schema()["required"] == ["a", "b"]
        assert len(host_processes_with(marker)) >= 2  # bubblewrap and the server at least

        registry = ToolRegistry(tools)
        whoami = json.loads((await registry.call(call("local__whoami", {}))).content)
        assert whoami["hostname"] == "sandbox" and whoami["cwd"] == "/workspace"
        assert whoami["reads_shadow"] is False and whoami["pid"] < 10  # its own pid namespace
        note = await registry.call(call("local__write_note", {"name": "n.txt", "text": "hi"}))
        assert note.ok and note.content == "/workspace/n.txt"
        assert (workspace / "n.txt").read_text() == "hi"
        assert (await registry.call(call("local__add", {"a": 2, "b": 3}))).content == "5"
        assert json.loads(await local.call("meta", {})) == {}  # no span, no trace context
        tracing = Tracing(TracingConfig(), "test", store=RecentTraces())
        with span(tracing.tracer("test"), "tool call") as current:
            sent = json.loads(await local.call("meta", {}))
        tracing.shutdown()
        context = current.get_span_context()
        ids = [f"{context.trace_id:032x}", f"{context.span_id:016x}"]
        assert sent["traceparent"].split("-")[1:3] == ids

        before = json.loads(await local.call("stats", {}))["tools/call"]
        invalid = await registry.call(call("local__add", {"a": "2"}))
        assert invalid.code == ToolErrorCode.INVALID_ARGUMENTS
        assert (
            "'b' is a required property" in invalid.content
            and "'2' is not of type" in invalid.content
        )
        assert (
            await registry.call(call("local__add", "[1, 2]"))
        ).code == ToolErrorCode.INVALID_JSON
        assert json.loads(await local.call("stats", {}))["tools/call"] == before + 1

        failed = await registry.call(call("local__fail", {"message": "no luck"}))
        assert failed.code == ToolErrorCode.TOOL_FAILED and "no luck" in failed.content
        picture = await registry.call(call("local__picture", {}))
        image = f"[image: image/png, {len(PNG)} bytes, not shown]"
        assert picture.content.splitlines() == ["a pixel", image]

        local.timeout_s = 0.5
        slow = await registry.call(call("local__nap", {"seconds": 5}))
        assert slow.code == "mcp_server_failed" and "did not answer within 0.5 s" in slow.content
        local.timeout_s = 10
        assert (
            await registry.call(call("local__echo", {"text": "still here"}))
        ).content == "still here"

        died = await registry.call(call("local__die", {}))
        assert died.code == "mcp_server_failed" and "connection closed" in died.content
        after = await registry.call(call("local__echo", {"text": "x"}))
        assert after.code == "mcp_server_failed"
        assert [tool.name for tool in await local.tools()] == [tool.name for tool in tools]
    await gone(marker)


async def test_cancelling_a_run_mid_call_stops_the_server(
    bubblewrap: BubblewrapSandbox, workspace: Path, marker: str
) -> None:
    agent = profile(mcp_servers=[stdio_server(marker)])
    calling = asyncio.Event()

    async def run() -> None:
        async with open_mcp_servers(agent, workspace, sandbox=bubblewrap) as (local,):
            calling.set()
            await local.call("nap", {"seconds": 60})

    task = asyncio.ensure_future(run())
    await asyncio.wait_for(calling.wait(), 30)
    await asyncio.sleep(0.2)
    assert host_processes_with(marker)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await gone(marker)


async def test_servers_that_cannot_start_fail_the_open(
    bubblewrap: BubblewrapSandbox,
    workspace: Path,
    tmp_path: Path,
    marker: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    missing = profile(mcp_servers=[{"name": "nope", "command": "no-such-mcp-server"}])
    with pytest.raises(McpServerFailed, match=r"'nope': starting failed.*not found"):
        async with open_mcp_servers(missing, workspace, sandbox=bubblewrap):
            pass
    home = tmp_path / "ember-home"
    (home / "tokens").mkdir(parents=True)
    monkeypatch.setenv("EMBER_HOME", str(home))
    for path in (home / "tokens", tmp_path, workspace):
        server = stdio_server(marker, read_only_paths=[*python_binds(), str(path)])
        with pytest.raises(BadRequest, match="protected"):
            async with open_mcp_servers(
                profile(mcp_servers=[server]), workspace, sandbox=bubblewrap
            ):
                pass
    with pytest.raises(ValidationFailed, match="no sandbox"):
        async with open_mcp_servers(profile(mcp_servers=[stdio_server(marker)]), workspace):
            pass


# -- Streamable HTTP -------------------------------------------------------------------------


async def no_dns(host: str, port: int) -> list[str]:
    raise AssertionError(f"a DNS query for {host}")


def http_profile(server: McpHttpServer, url: str | None = None, *hosts: str) -> AgentProfile:
    return profile(
        egress_hosts=list(hosts) or [f"127.0.0.1:{server.port}"],
        mcp_servers=[{"name": "remote", "url": url or server.url}],
    )


async def test_an_http_server_on_a_named_loopback_host_lists_once_until_it_changes(
    http_server: McpHttpServer, workspace: Path
) -> None:
    agent = http_profile(http_server)
    async with open_mcp_servers(agent, workspace, resolver=no_dns) as (remote,):
        assert http_server.counts["tools/list"] == 3
        assert set(http_server.hosts) == {f"127.0.0.1:{http_server.port}"}
        for _ in range(3):
            tools = await remote.tools()
        assert [tool.name for tool in tools] == [f"remote__{name}" for name in TOOLS]
        assert http_server.counts["tools/list"] == 3 and remote.list_requests == 3
        registry = ToolRegistry(tools)
        assert (await registry.call(call("remote__echo", {"text": "hi"}))).content == "hi"
        grown = await registry.call(call("remote__grow", {"name": "extra"}))
        assert grown.content == "added extra"

        async def told() -> bool:
            return remote.stale

        await eventually(told, "the list_changed notification arrives", 5.0)
        assert http_server.counts["tools/list"] == 3
        names = [tool.name for tool in await remote.tools()]
        assert names == [f"remote__{name}" for name in [*TOOLS, "extra"]]
        assert http_server.counts["tools/list"] == 7 and not remote.stale
        await remote.tools()
        assert http_server.counts["tools/list"] == 7

        http_server.__exit__()
        lost = await ToolRegistry(await remote.tools()).call(call("remote__add", {"a": 1, "b": 1}))
        assert lost.code == "mcp_server_failed" and "'remote': calling add failed" in lost.content


async def test_what_the_block_raises_comes_out_as_it_is(
    http_server: McpHttpServer, workspace: Path
) -> None:
    failure = ValidationFailed("raised inside the block")
    with pytest.raises(ValidationFailed) as caught:
        async with open_mcp_servers(http_profile(http_server), workspace, resolver=no_dns):
            raise failure
    assert caught.value is failure


async def test_an_http_server_whose_host_is_not_named_gets_nothing(
    http_server: McpHttpServer, workspace: Path
) -> None:
    with pytest.raises(ValidationError, match="not in `egress_hosts`"):
        http_profile(http_server, None, "127.0.0.1:1")
    unchecked = AgentProfile.model_construct(  # as if the profile's own check were skipped
        model=MODEL,
        egress_hosts=("127.0.0.1:1",),
        mcp_servers=http_profile(http_server).mcp_servers,
        limits=http_profile(http_server).limits,
    )
    with pytest.raises(PolicyDenied, match="not in the profile's egress_hosts"):
        async with open_mcp_servers(unchecked, workspace, resolver=no_dns):
            pass
    assert http_server.hosts == []


async def test_a_name_that_resolves_to_loopback_must_be_named_exactly(
    http_server: McpHttpServer, workspace: Path
) -> None:
    resolved: list[str] = []

    async def resolver(host: str, port: int) -> list[str]:
        resolved.append(host)
        if host != "mcp.ember.test":
            raise AssertionError(f"a DNS query for {host}")
        return ["127.0.0.1"]

    url = f"http://mcp.ember.test:{http_server.port}/mcp"
    wildcard = http_profile(http_server, url, "*.ember.test")
    with pytest.raises(PolicyDenied, match=r"resolves to 127\.0\.0\.1"):
        async with open_mcp_servers(wildcard, workspace, resolver=resolver):
            pass
    assert http_server.hosts == [] and resolved == ["mcp.ember.test"]

    exact = http_profile(http_server, url, f"mcp.ember.test:{http_server.port}")
    async with open_mcp_servers(exact, workspace, resolver=resolver) as (remote,):
        assert await remote.call("add", {"a": 20, "b": 22}) == "42"
    assert set(http_server.hosts) == {f"mcp.ember.test:{http_server.port}"}


async def test_an_http_server_that_is_not_listening_fails_the_open(
    http_server: McpHttpServer, workspace: Path
) -> None:
    agent = profile(
        egress_hosts=[f"127.0.0.1:{http_server.port}", "127.0.0.1:9"],
        mcp_servers=[
            {"name": "remote", "url": http_server.url},
            {"name": "down", "url": "http://127.0.0.1:9/mcp"},
        ],
    )
    down = "'down': starting failed: it could not be reached: ConnectError"
    with pytest.raises(McpServerFailed, match=down):
        async with open_mcp_servers(agent, workspace, resolver=no_dns):
            pass
    assert http_server.counts["tools/list"] == 3  # the first was opened, then closed


# -- end to end ------------------------------------------------------------------------------


def tool_results(request: dict[str, Any]) -> list[str]:
    return [message["content"] for message in request["messages"] if message["role"] == "tool"]


@pytest.mark.slow
async def test_an_agent_calls_mcp_tools_and_sees_new_ones(
    router: Router,
    scripted: ScriptedChatServer,
    bubblewrap: BubblewrapSandbox,
    workspace: Path,
    events: Events,
    marker: str,
) -> None:
    agent = profile(tools=["read_file"], mcp_servers=[stdio_server(marker)])
    scripted.load(
        [
            Turn(calls=(ScriptedCall("local__add", {"a": 2, "b": 3}),)),
            Turn(calls=(ScriptedCall("local__add", {"a": "two"}),)),
            Turn(calls=(ScriptedCall("local__grow", {"name": "shout"}),)),
            Turn(calls=(ScriptedCall("local__shout", {"text": "hey"}),)),
            Turn(text="2 + 3 = 5"),
        ]
    )
    async with open_mcp_servers(agent, workspace, sandbox=bubblewrap) as sources:
        loop = AgentLoop(
            router.chat, builtin_tools(agent, workspace), agent, events.context, sources=sources
        )
        transcript = await loop.run("add 2 and 3")
    await gone(marker)
    assert transcript.status == "completed" and transcript.answer == "2 + 3 = 5"
    first = scripted.requests[0]["tools"]
    offered = [tool["function"]["name"] for tool in first]
    assert offered == ["read_file", *[f"local__{name}" for name in TOOLS]]
    add = next(tool["function"] for tool in first if tool["function"]["name"] == "local__add")
    assert add["parameters"]["properties"]["a"]["type"] == "integer"
    added, invalid, grown, shouted = tool_results(scripted.requests[-1])
    assert added == "5" and "invalid_arguments" in invalid and grown == "added shout"
    assert shouted == "shout: hey"
    offered_later = [tool["function"]["name"] for tool in scripted.requests[3]["tools"]]
    assert offered_later[-1] == "local__shout" and "local__shout" not in offered
    codes = [call["code"] for step in transcript.steps for call in step.tool_calls]
    assert codes == [None, "invalid_arguments", None, None]


class Stub:
    """The stores of an ``agent`` job that these tests do not look into."""

    def __init__(self, agent: AgentProfile) -> None:
        self.agent = agent
        self.saved: list[tuple[Any, ...]] = []

    def in_workspace(self, workspace: str) -> Stub:
        return self

    def get(self, name: str) -> Any:
        return SimpleNamespace(profile=self.agent)

    def save(self, *args: Any, **options: Any) -> bool:
        self.saved.append(args)
        return True

    def note_dropped(self, *args: Any) -> None:
        return None

    def append(self, entry: Any) -> None:
        return None


def parts(stub: Stub, router: Router, sandbox: BubblewrapSandbox, work_root: Path) -> AgentParts:
    def unused() -> Any:
        raise AssertionError("not used by these runs")

    return AgentParts(
        profiles=lambda: stub,
        runs=lambda: stub,
        artifacts=lambda: stub,
        router=lambda: router,
        memory=unused,
        sandbox=lambda: sandbox,
        tokens=lambda: stub,
        audit=lambda: stub,
        work_root=work_root,
    )


@pytest.mark.slow
async def test_an_agent_job_opens_its_servers_and_closes_them_when_cancelled(
    router: Router,
    scripted: ScriptedChatServer,
    bubblewrap: BubblewrapSandbox,
    tmp_path: Path,
    events: Events,
    marker: str,
) -> None:
    stub = Stub(profile(mcp_servers=[stdio_server(marker)]))
    kind = agent_kind(parts(stub, router, bubblewrap, tmp_path / "work"))
    scripted.load(
        [
            Turn(calls=(ScriptedCall("local__write_note", {"name": "a.txt", "text": "A"}),)),
            Turn(text="wrote it"),
        ]
    )
    result = await kind.handler(events.context, AgentInput(agent="x", task="write"))
    assert result["status"] == "completed" and result["answer"] == "wrote it"
    await gone(marker)
    (ready,) = events.logs("mcp server ready")
    assert ready["server"] == "local" and ready["tools"] == [f"local__{n}" for n in TOOLS]
    artifacts = [args[1] for args in stub.saved if len(args) == 2]
    assert [artifact.path for artifact in artifacts[0]] == ["a.txt"]

    scripted.load([Turn(calls=(ScriptedCall("local__nap", {"seconds": 60}),))])
    task = asyncio.ensure_future(kind.handler(events.context, AgentInput(agent="x", task="nap")))

    async def napping() -> bool:
        return any(event["tool"] == "local__nap" for event in events.logs("tool call"))

    await eventually(napping, "the agent calls nap", 30.0)
    assert host_processes_with(marker)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await gone(marker)
    assert not (tmp_path / "work" / "job-1").exists()
