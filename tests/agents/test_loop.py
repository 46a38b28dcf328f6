"""The agent loop against a real router and ember's OpenAI provider, the model being the
scripted fake over loopback HTTP; events go through a real ``JobContext``."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ember.agents import AgentLoop, AgentProfile, ToolRegistry, builtin_tools
from ember.chat import ChatMessage, Completion, GenerationOptions
from ember.config import Budget, ProvidersConfig, RouterConfig
from ember.errors import AgentLimitExceeded, NoProviderAvailable
from ember.providers import OpenAIProvider
from ember.providers.budget import Budgets
from ember.providers.router import Router, RouteRequest
from ember.storage import Database, Migrator, SqlUsageLog
from tests.agents.conftest import MODEL, Events
from tests.fakes.scripted_chat_fake import ScriptedCall, ScriptedChatServer, Turn

FILE_TOOLS = ("read_file", "write_file", "list_files")
ROUTE = RouteRequest(principal="alice", workspace="team", request_id="r-1", job_id="job-1")


def agent(
    router: Router,
    workspace: Path,
    events: Events | None = None,
    tools: ToolRegistry | None = None,
    **fields: Any,
) -> AgentLoop:
    profile = AgentProfile.model_validate({"model": MODEL, "tools": FILE_TOOLS, **fields})
    registry = tools if tools is not None else builtin_tools(profile, workspace)
    context = events.context if events is not None else None
    return AgentLoop(router.chat, registry, profile, context, ROUTE)


def tool_messages(request: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in request["messages"] if m["role"] == "tool"]


async def test_a_run_reads_writes_and_answers(
    router: Router, scripted: ScriptedChatServer, workspace: Path, events: Events
) -> None:
    (workspace / "a.txt").write_text("alpha")
    scripted.load(
        [
            Turn(calls=(ScriptedCall("read_file", {"path": "a.txt"}),), usage=(10, 3)),
            Turn(
                "Copying.",
                (
                    ScriptedCall("write_file", {"path": "b.txt", "content": "ALPHA"}),
                    ScriptedCall("list_files", {}),
                ),
                usage=(20, 6),
            ),
            Turn("Done: b.txt holds ALPHA.", usage=(30, 7)),
        ]
    )
    loop = agent(router, workspace, events, system_prompt="You are careful.")
    transcript = await loop.run("Upper-case a.txt into b.txt")
    assert transcript is loop.transcript
    assert (transcript.status, transcript.answer) == ("completed", "Done: b.txt holds ALPHA.")
    assert (workspace / "b.txt").read_text() == "ALPHA"

    first, second, third = scripted.requests
    assert [m["role"] for m in first["messages"]] == ["system", "user"]
    assert [t["function"]["name"] for t in first["tools"]] == list(FILE_TOOLS)
    [read] = tool_messages(second)
    assert read["tool_call_id"] == "call_1_0"
    assert json.loads(read["content"])["content"] == "alpha"
    written, listed = tool_messages(third)[1:]
    assert (written["tool_call_id"], listed["tool_call_id"]) == ("call_2_0", "call_2_1")
    assert json.loads(written["content"]) == {"path": "b.txt", "bytes": 5, "appended": False}
    assert {e["path"] for e in json.loads(listed["content"])["entries"]} == {"a.txt", "b.txt"}

    stored = json.loads(json.dumps(transcript.to_dict()))
    assert stored["status"] == "completed" and stored["error"] is None
    assert stored["usage"] == {"prompt_tokens": 60, "completion_tokens": 16, "total_tokens": 76}
    assert [s["usage"]["total_tokens"] for s in stored["steps"]] == [13, 26, 37]
    assert [[c["name"] for c in s["tool_calls"]] for s in stored["steps"]] == [
        ["read_file"],
        ["write_file", "list_files"],
        [],
    ]
    assert stored["steps"][0]["provider"] == "scripted"
    roles = [m["role"] for m in stored["messages"]]
    assert roles == [
        "system",
        "user",
        "assistant",
        "tool",
        "assistant",
        "tool",
        "tool",
        "assistant",
    ]
    assert stored["messages"][4]["tool_calls"][0]["function"]["name"] == "write_file"

    assert [e["tool"] for e in events.logs("tool call")] == [
        "read_file",
        "write_file",
        "list_files",
    ]
    assert events.logs("tool call")[1]["arguments"] == {"path": "b.txt", "content": "ALPHA"}
    results = events.logs("tool result")
    assert [(r["tool"], r["ok"], r["code"]) for r in results] == [
        ("read_file", True, None),
        ("write_file", True, None),
        ("list_files", True, None),
    ]
    assert [s["step"] for s in events.logs("agent step")] == [1, 2, 3]
    assert events.tokens() == ["Done: b.txt holds ALPHA."]
    [finished] = events.logs("agent finished")
    assert finished["status"] == "completed" and finished["steps"] == 3


async def test_bad_calls_reach_the_model_as_tool_errors(
    router: Router, scripted: ScriptedChatServer, workspace: Path, events: Events
) -> None:
    scripted.load(
        [
            Turn(
                calls=(
                    ScriptedCall("read_file", '{"path": "a.txt"'),
                    ScriptedCall("read_file", {"path": "a.txt", "mode": "rb"}),
                    ScriptedCall("read_file", {"path": 7}),
                    ScriptedCall("delete_file", {"path": "a.txt"}),
                    ScriptedCall("read_file", {"path": "../../etc/passwd"}),
                    ScriptedCall("run_command", {"command": "ls"}),
                )
            ),
            Turn("I could not."),
        ]
    )
    transcript = await agent(router, workspace, events).run("try")
    assert transcript.status == "completed"
    seen = [json.loads(m["content"])["error"] for m in tool_messages(scripted.requests[1])]
    assert [e["code"] for e in seen] == [
        "invalid_json",
        "invalid_arguments",
        "invalid_arguments",
        "unknown_tool",
        "policy_denied",
        "unknown_tool",
    ]
    assert "unknown parameter 'mode'" in seen[1]["message"]
    assert "path: Input should be a valid string" in seen[2]["message"]
    assert events.logs("tool call")[0]["arguments"] == '{"path": "a.txt"'
    assert [r["ok"] for r in events.logs("tool result")] == [False] * 6


async def test_missing_and_repeated_call_ids_are_made_unique(
    router: Router, scripted: ScriptedChatServer, workspace: Path
) -> None:
    scripted.load(
        [
            Turn(
                calls=(ScriptedCall("list_files", {}, id=""), ScriptedCall("list_files", {}, id=""))
            ),
            Turn(calls=(ScriptedCall("list_files", {}, id="call_0"),)),
            Turn(calls=(ScriptedCall("list_files", {}, id="call_0"),)),
            Turn("ok"),
        ]
    )
    transcript = await agent(router, workspace).run("list")
    assert transcript.status == "completed"
    ids = [m.tool_call_id for m in transcript.messages if m.role == "tool"]
    assert ids == ["call_1_0", "call_1_1", "call_0", "call_3_0"]


async def test_the_step_limit_stops_before_tools_no_call_could_read(
    router: Router, scripted: ScriptedChatServer, workspace: Path, events: Events
) -> None:
    scripted.load([Turn(calls=(ScriptedCall("list_files", {}),))])
    scripted.repeat_last = True
    transcript = await agent(router, workspace, events, limits={"max_steps": 3}).run("loop")
    assert (transcript.status, transcript.limit) == ("limit_exceeded", "steps")
    assert len(scripted.requests) == 3 and len(transcript.steps) == 3
    assert [len(s.tool_calls) for s in transcript.steps] == [1, 1, 0]
    assert transcript.messages[-1].role == "assistant" and transcript.answer is None
    assert transcript.error == {
        "code": "agent_limit_exceeded",
        "detail": "the run stopped at its steps limit (3)",
        "limit": "steps",
        "value": 3,
    }
    with pytest.raises(AgentLimitExceeded) as caught:
        transcript.raise_for_status()
    assert caught.value.extra == {"limit": "steps", "value": 3}
    assert events.logs("agent finished")[0]["limit"] == "steps"
    assert events.tokens() == []


async def test_the_token_limit_counts_every_calls_usage(
    router: Router, scripted: ScriptedChatServer, workspace: Path
) -> None:
    scripted.load([Turn(calls=(ScriptedCall("list_files", {}),), usage=(100, 10))])
    scripted.repeat_last = True
    transcript = await agent(router, workspace, limits={"max_tokens": 200}).run("loop")
    assert (transcript.status, transcript.limit) == ("limit_exceeded", "tokens")
    assert len(scripted.requests) == 2 and transcript.usage.total_tokens == 220


async def test_the_cost_limit_prices_each_answer(
    router: Router, scripted: ScriptedChatServer, workspace: Path
) -> None:
    scripted.load([Turn(calls=(ScriptedCall("list_files", {}),), usage=(100, 10))])
    scripted.repeat_last = True
    profile = AgentProfile(model=MODEL, tools=FILE_TOOLS, limits={"max_cost_usd": 0.25})

    def cost(answer: Completion) -> float:
        return answer.usage.total_tokens / 1000

    loop = AgentLoop(
        router.chat, builtin_tools(profile, workspace), profile, None, ROUTE, cost=cost
    )
    transcript = await loop.run("loop")
    assert (transcript.status, transcript.limit) == ("limit_exceeded", "cost")
    assert len(scripted.requests) == 3 and transcript.cost_usd == pytest.approx(0.33)


async def test_the_wall_clock_limit_covers_a_slow_model(
    router: Router, scripted: ScriptedChatServer, workspace: Path
) -> None:
    scripted.load([Turn(calls=(ScriptedCall("list_files", {}),)), Turn("late", delay_s=3)])
    started = time.monotonic()
    transcript = await agent(router, workspace, limits={"wall_s": 0.5}).run("slow")
    assert time.monotonic() - started < 2
    assert (transcript.status, transcript.limit) == ("limit_exceeded", "wall_time")
    assert len(transcript.steps) == 1 and transcript.messages[-1].role == "tool"


@pytest.fixture
def usage_log(tmp_path: Path) -> Iterator[SqlUsageLog]:
    database = Database(f"sqlite:///{tmp_path / 'ember.db'}")
    Migrator(database).upgrade()
    yield SqlUsageLog(database)
    database.dispose()


async def test_a_budget_refusal_ends_the_run_cleanly(
    scripted: ScriptedChatServer, workspace: Path, usage_log: SqlUsageLog, events: Events
) -> None:
    scripted.load([Turn(calls=(ScriptedCall("list_files", {}),), usage=(30, 5)), Turn("never")])
    budgets = Budgets(
        ProvidersConfig(principal_budgets={"alice": Budget(tokens_per_day=50)}), usage_log
    )
    provider = OpenAIProvider("scripted", scripted.base_url, api_key="k", timeout_s=5)
    router = Router({"scripted": provider}, RouterConfig(retry_attempts=1), budgets=budgets)
    profile = AgentProfile(model=MODEL, tools=FILE_TOOLS)
    try:
        loop = AgentLoop(
            router.chat,
            builtin_tools(profile, workspace),
            profile,
            events.context,
            ROUTE,
            options=GenerationOptions(max_tokens=10),
        )
        transcript = await loop.run("go")
    finally:
        await router.aclose()
    assert transcript.status == "budget_exceeded" and transcript.error is not None
    assert transcript.error["code"] == "budget_exceeded"
    assert len(scripted.requests) == 1 and len(transcript.steps) == 1
    assert events.logs("agent finished")[0]["status"] == "budget_exceeded"


async def test_a_failed_model_call_fails_the_run_and_keeps_the_transcript(
    router: Router, scripted: ScriptedChatServer, workspace: Path
) -> None:
    scripted.load([Turn(calls=(ScriptedCall("list_files", {}),)), Turn(status=500)])
    loop = agent(router, workspace)
    with pytest.raises(NoProviderAvailable):
        await loop.run("go")
    assert loop.transcript.status == "failed"
    assert loop.transcript.error is not None
    assert loop.transcript.error["code"] == "no_provider_available"
    assert len(loop.transcript.steps) == 1


async def test_cancellation_stops_promptly_and_keeps_the_partial_transcript(
    router: Router, scripted: ScriptedChatServer, workspace: Path
) -> None:
    scripted.load([Turn(calls=(ScriptedCall("list_files", {}),)), Turn("late", delay_s=5)])
    loop = agent(router, workspace)
    task = asyncio.create_task(loop.run("go"))
    while len(scripted.requests) < 2:
        await asyncio.sleep(0.01)
    started = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - started < 1
    assert loop.transcript.status == "cancelled"
    assert [m.role for m in loop.transcript.messages] == ["user", "assistant", "tool"]
    assert loop.transcript.to_dict()["status"] == "cancelled"


async def test_only_the_profiles_tools_are_offered_and_callable(
    router: Router, scripted: ScriptedChatServer, workspace: Path
) -> None:
    wide = AgentProfile(model=MODEL, tools=FILE_TOOLS)
    scripted.load(
        [Turn(calls=(ScriptedCall("write_file", {"path": "x", "content": "y"}),)), Turn("ok")]
    )
    profile = AgentProfile(model=MODEL, tools=("read_file",))
    loop = AgentLoop(router.chat, builtin_tools(wide, workspace), profile)
    await loop.run("write")
    assert [t["function"]["name"] for t in scripted.requests[0]["tools"]] == ["read_file"]
    [result] = tool_messages(scripted.requests[1])
    assert json.loads(result["content"])["error"]["code"] == "unknown_tool"
    assert not (workspace / "x").exists()


async def test_a_loop_runs_once(
    router: Router, scripted: ScriptedChatServer, workspace: Path
) -> None:
    scripted.load([Turn("hi")])
    loop = agent(router, workspace)
    opening = [ChatMessage("system", "s"), ChatMessage("user", "u")]
    assert (await loop.run(opening)).answer == "hi"
    with pytest.raises(RuntimeError):
        await loop.run("again")
