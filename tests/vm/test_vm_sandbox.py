"""The VM sandbox tier passes the same contract suites as bubblewrap: one-shot runs,
long-lived commands and sessions, each in a real VM booted under TCG.

A command's processes live in its VM, not on the host: :meth:`VMTier.leftovers` asks every
sandbox VM's guest agent for its process list (and looks at the host too, where a long-lived
command's bridge runs), so "nothing outlives the command" is checked where it could fail."""

from __future__ import annotations

from typing import ClassVar

import pytest

from ember.testing.sandbox import SandboxContract, host_processes_with
from ember.testing.sandbox_session import SandboxSessionContract
from ember.vm.sandbox import VMSandbox

pytestmark = pytest.mark.slow


class VMTier:
    """What both contract suites need on the VM tier: its sandbox, a slack that covers a
    boot under TCG, and a look inside the VMs for leftovers."""

    slack_s: ClassVar[float] = 30.0
    vm: VMSandbox

    @pytest.fixture
    def sandbox(self, vm_sandbox: VMSandbox) -> VMSandbox:
        self.vm = vm_sandbox
        return vm_sandbox

    def leftovers(self, marker: str) -> list[int]:
        inside = [process.pid for process in self.vm.processes() if marker in process.cmdline]
        return host_processes_with(marker) + inside


class TestVMSandbox(VMTier, SandboxContract):
    pass


class TestVMSession(VMTier, SandboxSessionContract):
    pass
