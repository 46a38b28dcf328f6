"""An ``agent`` job whose profile asks for ``isolation: vm``: its commands run in a real VM
(the VM sandbox tier, under TCG), its files come back as artifacts; without a VM tier the job
fails ``sandbox_unavailable`` before the model is called."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from ember.errors import SandboxUnavailable
from ember.jobs.agent_kind import AgentInput, AgentParts, agent_kind
from ember.providers.router import Router
from ember.sandbox.protocol import Sandbox
from ember.vm.sandbox import VMSandbox
from tests.agents.conftest import Events
from tests.agents.test_mcp import Stub, parts, profile
from tests.fakes.scripted_chat_fake import ScriptedCall, ScriptedChatServer, Turn


def vm_parts(stub: Stub, router: Router, vm: Sandbox | None, work_root: Path) -> AgentParts:
    """The parts of ``test_mcp``, with ``vm`` as the VM tier and no bubblewrap tier."""

    def unused() -> Any:
        raise AssertionError("the bubblewrap tier is not used by these runs")

    made = parts(stub, router, None, work_root)  # type: ignore[arg-type]
    return dataclasses.replace(
        made, sandbox=unused, vm_sandbox=(lambda: vm) if vm is not None else None
    )


async def test_without_a_vm_tier_a_vm_profile_fails_before_the_model_is_called(
    router: Router, scripted: ScriptedChatServer, tmp_path: Path, events: Events
) -> None:
    stub = Stub(profile(tools=["run_command"], isolation="vm"))
    kind = agent_kind(vm_parts(stub, router, None, tmp_path / "work"))
    with pytest.raises(SandboxUnavailable, match="isolation 'vm'"):
        await kind.handler(events.context, AgentInput(agent="x", task="go"))
    assert scripted.requests == []


@pytest.mark.slow
async def test_a_vm_profile_runs_its_commands_in_a_vm(
    router: Router,
    scripted: ScriptedChatServer,
    vm_sandbox: VMSandbox,
    tmp_path: Path,
    events: Events,
) -> None:
    stub = Stub(profile(tools=["run_command", "read_file"], isolation="vm"))
    kind = agent_kind(vm_parts(stub, router, vm_sandbox, tmp_path / "work"))
    script = "uname -r > kernel.txt; id -u; cat /proc/1/cmdline | tr '\\0' ' '"
    scripted.load(
        [
            Turn(calls=(ScriptedCall("run_command", {"command": script}),)),
            Turn(calls=(ScriptedCall("read_file", {"path": "kernel.txt"}),)),
            Turn(text="done"),
        ]
    )
    result = await kind.handler(events.context, AgentInput(agent="x", task="look around"))
    assert result["status"] == "completed" and result["answer"] == "done"
    ran = json.loads(scripted.requests[1]["messages"][-1]["content"])
    assert ran["exit_code"] == 0, ran
    uid, init = ran["stdout"].splitlines()
    assert uid == "1000" and "/ember/walls.py" in init  # the executor, pid 1 of its namespace
    read = json.loads(scripted.requests[2]["messages"][-1]["content"])
    guest_kernel = read["content"].strip()
    assert (
        guest_kernel.endswith("-cloud-amd64")
        and guest_kernel != Path("/proc/sys/kernel/osrelease").read_text().strip()
    )
    artifacts = [args[1] for args in stub.saved if len(args) == 2]
    assert [artifact.path for artifact in artifacts[0]] == ["kernel.txt"]
