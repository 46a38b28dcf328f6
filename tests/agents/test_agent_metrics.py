"""Metrics of an agent run (a real loop, the scripted model behind a real router, the real
bubblewrap sandbox): the run by outcome, its steps, each tool call by tool and outcome, and
denials by tool, a name no tool of the run has counting as ``unknown``."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from ember.agents import AgentLoop, AgentProfile, builtin_tools
from ember.agents.policy import AgentLimits
from ember.errors import SandboxUnavailable
from ember.observability.metrics import PrometheusMetrics
from ember.providers.router import Router
from ember.sandbox import BubblewrapSandbox
from ember.testing.metrics import sample
from tests.agents.conftest import MODEL
from tests.fakes.scripted_chat_fake import ScriptedCall, ScriptedChatServer, Turn

PROFILE = AgentProfile(name="counted", model=MODEL, tools=("run_command", "read_file"))
SCRIPT = [
    Turn(
        calls=(
            ScriptedCall("run_command", {"command": "echo hi; exit 3"}, id="c1"),
            ScriptedCall("write_file", {"path": "x", "content": "y"}, id="c2"),
            ScriptedCall("read_file", {"path": "../outside"}, id="c3"),
            ScriptedCall("made up\nname", {}, id="c4"),
        ),
        usage=(10, 5),
    ),
    Turn(calls=(ScriptedCall("read_file", {"path": "missing.txt"}, id="c5"),), usage=(10, 5)),
    Turn("done", usage=(20, 3)),
]


@pytest.fixture(scope="module")
def bubblewrap() -> BubblewrapSandbox:
    sandbox = BubblewrapSandbox()
    try:
        sandbox.check()
    except SandboxUnavailable as exc:
        pytest.skip(f"the bubblewrap sandbox cannot run here: {exc.detail}")
    return sandbox


def value(metrics: PrometheusMetrics, name: str, **labels: str) -> float | None:
    return sample(metrics.render().decode(), name, labels)


async def test_a_run_counts_its_outcome_steps_tool_calls_and_denials(
    bubblewrap: BubblewrapSandbox, router: Router, scripted: ScriptedChatServer, workspace: Path
) -> None:
    metrics = PrometheusMetrics()
    scripted.load(SCRIPT)
    async with contextlib.AsyncExitStack() as sessions:
        tools = builtin_tools(PROFILE, workspace, sandbox=bubblewrap, sessions=sessions)
        loop = AgentLoop(router.chat, tools, PROFILE, metrics=metrics)
        transcript = await loop.run("go")
    assert transcript.status == "completed"
    codes = [call["code"] for step in transcript.steps for call in step.tool_calls]
    missing = codes[-1]
    assert codes == [None, "unknown_tool", "policy_denied", "unknown_tool", missing]
    assert missing is not None

    assert value(metrics, "ember_agent_runs_total", outcome="completed") == 1
    assert value(metrics, "ember_agent_steps_total") == 3
    calls = "ember_agent_tool_calls_total"
    assert value(metrics, calls, tool="run_command", outcome="ok") == 1
    assert value(metrics, calls, tool="unknown", outcome="unknown_tool") == 2
    assert value(metrics, calls, tool="read_file", outcome="policy_denied") == 1
    assert value(metrics, calls, tool="read_file", outcome=missing) == 1
    assert value(metrics, "ember_agent_denials_total", tool="unknown") == 2
    assert value(metrics, "ember_agent_denials_total", tool="read_file") == 1
    assert value(metrics, "ember_agent_denials_total", tool="run_command") is None
    text = metrics.render().decode()
    assert "write_file" not in text and "made up" not in text


async def test_a_run_stopped_by_a_limit_counts_as_limit_exceeded(
    router: Router, scripted: ScriptedChatServer, workspace: Path
) -> None:
    metrics = PrometheusMetrics()
    profile = AgentProfile(
        name="short", model=MODEL, tools=("read_file",), limits=AgentLimits(max_steps=1)
    )
    scripted.load([Turn(calls=(ScriptedCall("read_file", {"path": "x"}, id="c1"),))])
    loop = AgentLoop(router.chat, builtin_tools(profile, workspace), profile, metrics=metrics)
    transcript = await loop.run("go")
    assert transcript.status == "limit_exceeded"
    assert value(metrics, "ember_agent_runs_total", outcome="limit_exceeded") == 1
    assert value(metrics, "ember_agent_steps_total") == 1
    assert value(metrics, "ember_agent_tool_calls_total", tool="read_file", outcome="ok") is None
