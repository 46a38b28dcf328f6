"""Metrics of the real bubblewrap sandbox: a one-shot run starts one sandbox, and counts as
killed by the limit that ended it; a session counts each sandbox it starts, with its time to
ready, and each command a limit ended."""

from __future__ import annotations

from pathlib import Path

from ember.observability.metrics import PrometheusMetrics
from ember.sandbox import BubblewrapSandbox, SandboxLimits
from ember.testing.metrics import sample
from tests.sandbox.conftest import run_cgroups

SLEEP = ["/bin/sh", "-c", "sleep 30"]
LIMITS = SandboxLimits(wall_s=1.0, processes=16)


def value(metrics: PrometheusMetrics, name: str, **labels: str) -> float | None:
    return sample(metrics.render().decode(), name, labels)


async def test_a_one_shot_run_counts_its_start_and_its_kill_by_the_wall_limit(
    bubblewrap: BubblewrapSandbox, workspace: Path
) -> None:
    metrics = PrometheusMetrics()
    counted = BubblewrapSandbox(metrics=metrics)
    assert (await counted.run(["/bin/true"], workspace, LIMITS)).killed is None
    assert value(metrics, "ember_sandbox_kills_total", tier="bubblewrap", limit="timeout") is None

    result = await counted.run(SLEEP, workspace, LIMITS)
    assert result.killed == "timeout"
    assert value(metrics, "ember_sandbox_starts_total", tier="bubblewrap") == 2
    assert value(metrics, "ember_sandbox_kills_total", tier="bubblewrap", limit="timeout") == 1
    assert value(metrics, "ember_sandbox_start_seconds_count", tier="bubblewrap") is None
    assert run_cgroups(counted) == []


async def test_a_session_counts_its_start_with_its_time_and_a_command_killed_by_its_wall(
    bubblewrap: BubblewrapSandbox, workspace: Path
) -> None:
    metrics = PrometheusMetrics()
    counted = BubblewrapSandbox(metrics=metrics)
    async with counted.session(workspace, LIMITS) as session:
        assert value(metrics, "ember_sandbox_starts_total", tier="bubblewrap") == 1
        seconds = value(metrics, "ember_sandbox_start_seconds_sum", tier="bubblewrap")
        assert seconds is not None and seconds > 0
        assert (await session.run(["/bin/true"])).ok
        result = await session.run(SLEEP, timeout_s=0.5)
        assert result.killed == "timeout"
        assert (await session.run(["/bin/true"])).ok
    assert value(metrics, "ember_sandbox_starts_total", tier="bubblewrap") == 1
    assert value(metrics, "ember_sandbox_start_seconds_count", tier="bubblewrap") == 1
    assert value(metrics, "ember_sandbox_kills_total", tier="bubblewrap", limit="timeout") == 1
    assert run_cgroups(counted) == []
