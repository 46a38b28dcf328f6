"""What the bubblewrap sandbox costs per command, against the same commands started bare, in
one run.

- **start-up**: ``true`` through :meth:`BubblewrapSandbox.run` (with its per-command cgroups,
  and without: rlimits only) against ``true`` started bare by
  ``asyncio.create_subprocess_exec`` with the same pipes, workspace and environment; the
  three are interleaved, so a noisy machine affects all alike. Target: at most 10 ms added
  at p50.
- **100 commands**: :data:`COMMANDS` (``echo``, ``ls``, ``python3 -c pass``, ``grep``, ...)
  in sequence, bare, each in a one-shot sandbox (:meth:`BubblewrapSandbox.run`), all in one
  sandbox session (:meth:`BubblewrapSandbox.session`, opened for the batch: its start-up is
  counted), and through the agent's tool path (a ``run_command`` tool call validated and run
  by the :class:`~ember.agents.ToolRegistry` an agent job builds, in the run's session as an
  agent run does, its result rendered for the model), best of ``--rounds``. Target: the
  tool path at most 1.5x bare.

    .venv/bin/python benchmarks/sandbox.py [--runs 300] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

try:
    from benchmarks._stats import percentile
except ModuleNotFoundError:  # run as ``python benchmarks/X.py``: this folder is on sys.path
    from _stats import percentile

from ember.agents import AgentProfile, builtin_tools
from ember.chat import ToolCall
from ember.sandbox import BASE_ENV, BubblewrapSandbox, SandboxLimits

LIMITS = SandboxLimits(wall_s=30.0)
Runner = Callable[[Sequence[str], Path], Coroutine[Any, Any, int]]

_TEN: list[list[str]] = [
    ["echo", "hello from the sandbox"],
    ["ls", "-la"],
    ["python3", "-c", "pass"],
    ["cat", "notes.txt"],
    ["wc", "-l", "notes.txt"],
    ["grep", "-c", "line 1", "notes.txt"],
    ["sh", "-c", "for i in 1 2 3; do echo $i; done > counted.txt"],
    ["sort", "-r", "notes.txt"],
    ["head", "-n", "5", "notes.txt"],
    ["sed", "-n", "s/line/row/p", "notes.txt"],
]
COMMANDS: list[list[str]] = _TEN * 10
"""A hundred short commands of the kind an agent's shell tool runs, in the workspace that
:func:`prepare_workspace` makes."""


def prepare_workspace(path: Path) -> Path:
    """The files :data:`COMMANDS` read."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "notes.txt").write_text("".join(f"line {n}\n" for n in range(200)))
    return path


async def bare(argv: Sequence[str], workspace: Path) -> int:
    """``argv`` started the plain way, with the sandbox's environment and pipes."""
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=workspace,
        env=BASE_ENV,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    await process.communicate()
    assert process.returncode is not None
    return process.returncode


def sandboxed(sandbox: BubblewrapSandbox) -> Runner:
    async def run(argv: Sequence[str], workspace: Path) -> int:
        result = await sandbox.run(argv, workspace, LIMITS)
        return result.exit_code if result.exit_code is not None else -1

    return run


@contextlib.asynccontextmanager
async def in_session(sandbox: BubblewrapSandbox, workspace: Path) -> AsyncIterator[Runner]:
    """Commands run in one sandbox session over ``workspace``, open while this is."""
    async with sandbox.session(workspace, LIMITS) as session:

        async def run(argv: Sequence[str], _: Path) -> int:
            result = await session.run(argv)
            return result.exit_code if result.exit_code is not None else -1

        yield run


@contextlib.asynccontextmanager
async def tool_path(sandbox: BubblewrapSandbox, workspace: Path) -> AsyncIterator[Runner]:
    """Each command as an agent's ``run_command`` call: arguments validated, run in the
    run's sandbox session (opened by the first call, closed with the run, as the ``agent``
    job kind does), the result rendered as the model sees it."""
    profile = AgentProfile(model="bench", tools=("run_command",), sandbox={"wall_s": 30})
    calls = iter(range(1_000_000))
    async with contextlib.AsyncExitStack() as sessions:
        registry = builtin_tools(profile, workspace, sandbox=sandbox, sessions=sessions)

        async def run(argv: Sequence[str], _: Path) -> int:
            call = ToolCall.of(f"call_{next(calls)}", "run_command", {"command": list(argv)})
            result = await registry.call(call)
            return int(json.loads(result.content)["exit_code"]) if result.ok else -1

        yield run


async def startup(
    runners: dict[str, Runner],
    workspace: Path,
    runs: int,
) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {name: [] for name in runners}
    for name, runner in runners.items():  # warm up
        for _ in range(10):
            assert await runner(["true"], workspace) == 0, name
    for _ in range(runs):
        for name, runner in runners.items():
            started = time.perf_counter()
            await runner(["true"], workspace)
            samples[name].append((time.perf_counter() - started) * 1000)
    return samples


async def batch(runner: Runner, workspace: Path) -> float:
    started = time.perf_counter()
    for argv in COMMANDS:
        assert await runner(argv, workspace) == 0, argv
    return time.perf_counter() - started


async def measure(runs: int, rounds: int) -> dict[str, Any]:
    workspace = prepare_workspace(Path(tempfile.mkdtemp(prefix="ember-bench-sandbox-")))
    with_cgroups, rlimits_only = BubblewrapSandbox(), BubblewrapSandbox(use_cgroups=False)
    with_cgroups.check()
    rlimits_only.check()
    runners = {
        "bare": bare,
        "sandbox": sandboxed(with_cgroups),
        "sandbox (no cgroups)": sandboxed(rlimits_only),
    }
    samples = await startup(runners, workspace, runs)
    names = ("bare", "sandbox", "sandbox session", "agent tool path")
    totals: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(rounds):  # a session per batch, its start-up included, as an agent run's
        totals["bare"].append(await batch(bare, workspace))
        totals["sandbox"].append(await batch(runners["sandbox"], workspace))
        started = time.perf_counter()
        async with in_session(with_cgroups, workspace) as session:
            await batch(session, workspace)
        totals["sandbox session"].append(time.perf_counter() - started)
        started = time.perf_counter()
        async with tool_path(with_cgroups, workspace) as tools:
            await batch(tools, workspace)
        totals["agent tool path"].append(time.perf_counter() - started)
    return {
        "startup_ms": {
            name: {"p50": statistics.median(values), "p99": percentile(values, 0.99)}
            for name, values in samples.items()
        },
        "commands_s": {name: min(values) for name, values in totals.items()},
        "capabilities": sorted(with_cgroups.capabilities().enforced),
        "runs": runs,
        "rounds": rounds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    found = asyncio.run(measure(args.runs, args.rounds))
    startup_ms, commands_s = found["startup_ms"], found["commands_s"]
    base = startup_ms["bare"]["p50"]
    print("\n| start-up of `true` | p50 | p99 | added at p50 |\n| --- | --- | --- | --- |")
    for name, figures in startup_ms.items():
        added = figures["p50"] - base
        print(f"| {name} | {figures['p50']:.1f} ms | {figures['p99']:.1f} ms | {added:+.1f} ms |")
    bare_s = commands_s["bare"]
    print(f"\n| {len(COMMANDS)} commands in sequence | time | against bare |\n| --- | --- | --- |")
    for name, seconds in commands_s.items():
        print(f"| {name} | {seconds:.2f} s | {seconds / bare_s:.2f}x |")
    print(json.dumps(found))


if __name__ == "__main__":
    main()
