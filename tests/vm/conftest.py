"""The VM tier's sandbox contract (``test_vm_sandbox.py``) boots one VM under TCG for nearly
every case, each keeping a core busy for 15 to 240 s. ``make test`` runs the cases in
:data:`CORE` (the walls, limits, a session's state and cleanup: a handful of boots) and
reports how many it left out; ``EMBER_VM_CONTRACT=full`` (``make vm-contract``) runs them
all. The bubblewrap tier runs the whole contract in every ``make test``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

CONTRACT = Path(__file__).parent / "test_vm_sandbox.py"
CORE = frozenset(
    {
        "TestVMSandbox::test_runs_a_command_and_returns_its_output",
        "TestVMSandbox::test_exit_codes_and_stderr_are_reported",
        "TestVMSandbox::test_bad_requests_are_refused_before_anything_runs",
        "TestVMSandbox::test_env_names_that_cannot_be_passed_are_refused",
        "TestVMSandbox::test_refused_read_only_paths_are_bad_requests",
        "TestVMSandbox::test_nothing_else_is_writable",
        "TestVMSandbox::test_there_is_no_network",
        "TestVMSandbox::test_a_timeout_kills_the_whole_tree",
        "TestVMSandbox::test_output_is_capped_and_drained",
        "TestVMSession::test_files_persist_between_commands",
        "TestVMSession::test_bad_requests_are_refused",
        "TestVMSession::test_the_walls_hold_for_every_command",
        "TestVMSession::test_leaving_the_context_leaves_no_process",
    }
)
"""The cases ``make test`` runs, as ``Class::test``."""
LEFT_OUT = pytest.StashKey[int]()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("EMBER_VM_CONTRACT") == "full":
        return
    kept: list[pytest.Item] = []
    left: list[pytest.Item] = []
    for item in items:
        case = item.nodeid.split("::", 1)[-1]
        (left if item.path == CONTRACT and case not in CORE else kept).append(item)
    if left:
        config.hook.pytest_deselected(items=left)
        items[:] = kept
        config.stash[LEFT_OUT] = len(left)


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    left = config.stash.get(LEFT_OUT, 0)
    if left:
        terminalreporter.write_line(
            f"VM sandbox contract: {left} cases left out here (each boots a VM); "
            "`make vm-contract` runs every case"
        )
