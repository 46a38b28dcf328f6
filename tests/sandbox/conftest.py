"""The real bubblewrap sandbox, checked once for the session (skipped, with the reason, on a
machine where it cannot run), a workspace, the small limits most tests use, and the check
that no run left its cgroup behind."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ember.errors import SandboxUnavailable
from ember.sandbox import BubblewrapSandbox, SandboxLimits
from ember.sandbox.cgroups import PREFIX

LIMITS = SandboxLimits(wall_s=10.0, cpu_s=10, memory_bytes=128 * 1024 * 1024, processes=32)


def run_cgroups(sandbox: BubblewrapSandbox) -> list[Path]:
    """The per-run cgroups (of a command or a session) of ``sandbox`` that exist now."""
    parents = sandbox._cgroups.parents.values() if sandbox._cgroups else []
    return [child for parent in parents for child in parent.glob(f"{PREFIX}*")]


@pytest.fixture
def no_cgroup_left(bubblewrap: BubblewrapSandbox) -> Iterator[None]:
    yield
    assert run_cgroups(bubblewrap) == [], "a run's cgroup was not removed"


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    path = tmp_path / "workspace"
    path.mkdir()
    return path


@pytest.fixture(scope="session")
def bubblewrap() -> BubblewrapSandbox:
    sandbox = BubblewrapSandbox()
    try:
        sandbox.check()
    except SandboxUnavailable as exc:
        pytest.skip(f"no sandbox here: {exc}")
    return sandbox
