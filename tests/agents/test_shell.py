"""``run_command`` and ``run_python``: what they hand the sandbox and what the model sees
(a recording stand-in for the seam, which runs nothing), then real runs in the bubblewrap
sandbox driven by the agent loop (skipped where the sandbox cannot run)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from ember.agents import (
    AgentLoop,
    AgentProfile,
    SandboxOverrides,
    SandboxSettings,
    builtin_tools,
)
from ember.chat import ToolCall
from ember.errors import SandboxUnavailable, ValidationFailed
from ember.providers.router import Router
from ember.sandbox import BubblewrapSandbox
from ember.sandbox.protocol import (
    CommandResult,
    SandboxCapabilities,
    SandboxCommand,
    SandboxLimits,
)
from ember.testing.sandbox_session import descendants
from tests.agents.conftest import MODEL, Events
from tests.fakes.scripted_chat_fake import ScriptedCall, ScriptedChatServer, Turn


class RecordingSandbox:
    """Answers every run with ``result`` and records the calls."""

    def __init__(self, result: CommandResult) -> None:
        self.result = result
        self.runs: list[
            tuple[list[str], Path, SandboxLimits, bytes | None, Mapping[str, str] | None]
        ] = []

    def check(self) -> None:
        return None

    def capabilities(self) -> SandboxCapabilities:
        return SandboxCapabilities("recording", frozenset())

    async def run(
        self,
        argv: Sequence[str],
        workspace: Path,
        limits: SandboxLimits,
        *,
        stdin: bytes | None = None,
        env: Mapping[str, str] | None = None,
    ) -> CommandResult:
        self.runs.append((list(argv), workspace, limits, stdin, env))
        return self.result

    def command(
        self,
        argv: Sequence[str],
        workspace: Path,
        limits: SandboxLimits,
        *,
        env: Mapping[str, str] | None = None,
    ) -> SandboxCommand:
        raise NotImplementedError


PROFILE = AgentProfile(
    model="m",
    tools=("run_command", "run_python"),
    sandbox={"wall_s": 30, "output_bytes": 4096},
)
OK = CommandResult(0, b"hello\n", b"", 0.5)


async def call(
    sandbox: RecordingSandbox, workspace: Path, name: str, arguments: dict[str, object]
) -> dict[str, object]:
    tools = builtin_tools(PROFILE, workspace, sandbox=sandbox, env={"LANG": "C.UTF-8"})
    result = await tools.call(ToolCall.of("1", name, arguments))
    shown: dict[str, object] = json.loads(result.content)
    return shown


async def test_argv_strings_and_python_become_commands(workspace: Path) -> None:
    sandbox = RecordingSandbox(OK)
    shown = await call(sandbox, workspace, "run_command", {"command": ["ls", "-la"]})
    await call(sandbox, workspace, "run_command", {"command": "echo hi | wc -c", "stdin": "x"})
    await call(sandbox, workspace, "run_python", {"code": "print(1)", "timeout_s": 5})
    await call(sandbox, workspace, "run_command", {"command": "sleep 1", "timeout_s": 999})
    assert [run[0] for run in sandbox.runs] == [
        ["ls", "-la"],
        ["sh", "-c", "echo hi | wc -c"],
        ["python3", "-c", "print(1)"],
        ["sh", "-c", "sleep 1"],
    ]
    assert {run[1] for run in sandbox.runs} == {workspace}
    assert [run[2].wall_s for run in sandbox.runs] == [30, 30, 5, 30]
    assert {run[2].output_bytes for run in sandbox.runs} == {4096}
    assert [run[3] for run in sandbox.runs] == [None, b"x", None, None]
    assert sandbox.runs[0][4] == {"LANG": "C.UTF-8"}
    assert shown == {
        "exit_code": 0,
        "signal": None,
        "killed": None,
        "duration_s": 0.5,
        "stdout": "hello\n",
        "stderr": "",
        "stdout_truncated": False,
        "stderr_truncated": False,
    }


async def test_a_failed_or_killed_command_is_a_result(workspace: Path) -> None:
    killed = CommandResult(
        None, b"x" * 10_000, b"oops", 30.0, signal=9, killed="timeout", stdout_truncated=True
    )
    shown = await call(RecordingSandbox(killed), workspace, "run_command", {"command": "yes"})
    assert (shown["exit_code"], shown["signal"], shown["killed"]) == (None, 9, "timeout")
    assert len(str(shown["stdout"])) == 8000 and shown["stdout_truncated"] is True


@pytest.mark.parametrize(
    "arguments", [{"command": []}, {"command": ""}, {"command": ["ls", 1]}, {"cmd": "ls"}]
)
async def test_bad_commands_never_reach_the_sandbox(
    workspace: Path, arguments: dict[str, object]
) -> None:
    sandbox = RecordingSandbox(OK)
    shown = await call(sandbox, workspace, "run_command", arguments)
    assert shown["error"]["code"] == "invalid_arguments"  # type: ignore[index]
    assert sandbox.runs == []


def test_code_tools_need_a_sandbox(workspace: Path) -> None:
    with pytest.raises(ValidationFailed, match="no sandbox"):
        builtin_tools(PROFILE, workspace)


def test_sandbox_settings_mirror_every_sandbox_limit() -> None:
    names = {field.name for field in dataclasses.fields(SandboxLimits)}
    assert set(SandboxSettings.model_fields) == names
    assert set(SandboxOverrides.model_fields) == names


# --- the real sandbox ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bubblewrap() -> BubblewrapSandbox:
    sandbox = BubblewrapSandbox()
    try:
        sandbox.check()
    except SandboxUnavailable as exc:
        pytest.skip(f"the bubblewrap sandbox cannot run here: {exc.detail}")
    return sandbox


async def test_an_agent_writes_runs_and_reads_in_the_sandbox(
    bubblewrap: BubblewrapSandbox,
    router: Router,
    scripted: ScriptedChatServer,
    workspace: Path,
    events: Events,
) -> None:
    program = "import pathlib\npathlib.Path('out.txt').write_text(str(6 * 7))\nprint('wrote')\n"
    scripted.load(
        [
            Turn(calls=(ScriptedCall("write_file", {"path": "job.py", "content": program}),)),
            Turn(
                calls=(
                    ScriptedCall("run_command", {"command": ["python3", "job.py"]}),
                    ScriptedCall("run_python", {"code": "import os; print(os.getcwd())"}),
                    ScriptedCall("run_command", {"command": "cat out.txt; exit 3"}),
                )
            ),
            Turn("42"),
        ]
    )
    profile = AgentProfile(
        model=MODEL,
        tools=("write_file", "run_command", "run_python"),
        sandbox={"wall_s": 20},
    )
    tools = builtin_tools(profile, workspace, sandbox=bubblewrap)
    transcript = await AgentLoop(router.chat, tools, profile, events.context).run("compute")
    assert transcript.answer == "42"
    ran = [
        json.loads(m["content"]) for m in scripted.requests[2]["messages"] if m["role"] == "tool"
    ]
    assert (ran[1]["exit_code"], ran[1]["stdout"]) == (0, "wrote\n")
    assert (ran[2]["exit_code"], ran[2]["stdout"]) == (0, "/workspace\n")
    assert (ran[3]["exit_code"], ran[3]["stdout"]) == (3, "42")
    assert (workspace / "out.txt").read_text() == "42"


async def test_commands_have_no_network_and_are_stopped_at_their_timeout(
    bubblewrap: BubblewrapSandbox, scripted: ScriptedChatServer, workspace: Path
) -> None:
    profile = AgentProfile(model=MODEL, tools=("run_python", "run_command"))
    tools = builtin_tools(profile, workspace, sandbox=bubblewrap)
    probe = (
        "import socket\n"
        "try:\n"
        f"    socket.create_connection(('127.0.0.1', {scripted.port}), timeout=2)\n"
        "    print('reached')\n"
        "except OSError as exc:\n"
        "    print('refused', exc.errno)\n"
    )
    reached = await tools.call(ToolCall.of("1", "run_python", {"code": probe}))
    assert json.loads(reached.content)["stdout"].startswith("refused")
    slow = await tools.call(
        ToolCall.of("2", "run_command", {"command": "sleep 5", "timeout_s": 0.5})
    )
    shown = json.loads(slow.content)
    assert shown["killed"] == "timeout" and shown["duration_s"] < 3


async def test_a_run_s_commands_share_one_sandbox_session(
    bubblewrap: BubblewrapSandbox, workspace: Path
) -> None:
    profile = AgentProfile(model=MODEL, tools=("run_command", "run_python"))
    before = descendants(os.getpid())

    async def call(n: int, name: str, arguments: dict[str, object]) -> dict[str, object]:
        result = await tools.call(ToolCall.of(str(n), name, arguments))
        shown: dict[str, object] = json.loads(result.content)
        return shown

    async with contextlib.AsyncExitStack() as sessions:
        tools = builtin_tools(profile, workspace, sandbox=bubblewrap, sessions=sessions)
        assert descendants(os.getpid()) == before, "nothing starts before the first command"
        made = await call(1, "run_command", {"command": "echo x > /tmp/kept; echo $PPID"})
        slow = await call(2, "run_command", {"command": "sleep 5", "timeout_s": 0.5})
        seen = await call(3, "run_python", {"code": "print(open('/tmp/kept').read(), end='')"})
        again = await call(4, "run_command", {"command": "cat /tmp/kept; echo $PPID"})
        assert slow["killed"] == "timeout"
        assert seen["stdout"] == "x\n" and again["stdout"] == f"x\n{made['stdout']}"
        assert descendants(os.getpid()) - before, "the run's sandbox is up"
    assert descendants(os.getpid()) - before == set(), "the session ended with the run"
    ended = await call(5, "run_command", {"command": "true"})
    assert ended["error"] == {"code": "sandbox_failed", "message": "the sandbox session is closed"}
