"""What the VM sandbox tier costs, against a VM job and a bubblewrap sandbox, in one run.

Each round, interleaved: a ``vm`` job's VM running ``true`` (:meth:`VMRunner.run`, the
baseline: one boot, one command, teardown); a VM sandbox session (:meth:`VMSandbox.session`)
opened, ``true`` run in it, closed; and the same through a bubblewrap session. Reported:
the p50 and p99 of opening, of one command (with its copy back), of closing, of the whole,
and the whole VM sandbox against the VM job at p50. No target is set: this says what an
``isolation: vm`` agent run pays over a ``vm`` job and over bubblewrap.

    .venv/bin/python benchmarks/vm_sandbox.py [--runs 5] [--accel tcg|kvm]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

try:
    from benchmarks._stats import percentile
except ModuleNotFoundError:  # run as ``python benchmarks/X.py``: this folder is on sys.path
    from _stats import percentile

from ember.config import EmberConfig
from ember.sandbox import BubblewrapSandbox, SandboxLimits
from ember.sandbox.protocol import Sandbox
from ember.services.adapters import hypervisor
from ember.vm.image import GuestImage
from ember.vm.protocol import Accel
from ember.vm.runner import VMLimits, VMRunner
from ember.vm.sandbox import VMSandbox

LIMITS = SandboxLimits(wall_s=30.0, memory_bytes=256 * 1024 * 1024)


async def session_round(sandbox: Sandbox, workspace: Path) -> tuple[float, float, float]:
    """Seconds to open a session, run ``true`` in it, close it."""
    started = time.monotonic()
    opened = sandbox.session(workspace, LIMITS)
    session = await opened.__aenter__()
    ready = time.monotonic()
    try:
        result = await session.run(["true"])
        if not result.ok:
            raise RuntimeError(f"`true` failed: {result}")
        ran = time.monotonic()
    finally:
        await opened.__aexit__(None, None, None)
    return ready - started, ran - ready, time.monotonic() - ran


def summary(samples: list[float]) -> dict[str, float]:
    return {"p50": percentile(samples, 0.5), "p99": percentile(samples, 0.99)}


async def measure(runs: int, accel: Accel) -> dict[str, Any]:
    config = EmberConfig()
    image = GuestImage.load(config.vm_image_dir)
    root = Path(tempfile.mkdtemp(prefix="ember-vm-sandbox-bench-", dir="/var/tmp"))
    root.chmod(0o711)
    found_hypervisor = hypervisor(config.vm.uri)
    runner = VMRunner(found_hypervisor, lambda: image, root / "jobs", accel=accel)

    async def fixed() -> Accel:
        return accel

    vm = VMSandbox(
        found_hypervisor,
        lambda: image,
        uri=config.vm.uri,
        image_dir=image.directory,
        work_root=root / "sandboxes",
        accel=fixed,
        known_accel=lambda: accel,
    )
    bubblewrap = BubblewrapSandbox()
    workspace = root / "ws"
    workspace.mkdir()
    times: dict[str, list[float]] = {}

    def keep(name: str, value: float) -> None:
        times.setdefault(name, []).append(value)

    try:
        await runner.run(["true"], workspace, VMLimits())  # warm the caches
        await session_round(vm, workspace)
        for _ in range(runs):
            started = time.monotonic()
            await runner.run(["true"], workspace, VMLimits())
            keep("vm_job", time.monotonic() - started)
            for name, sandbox in (("vm", vm), ("bubblewrap", bubblewrap)):
                opening, running, closing = await session_round(sandbox, workspace)
                keep(f"{name}_open", opening)
                keep(f"{name}_run", running)
                keep(f"{name}_close", closing)
                keep(f"{name}_whole", opening + running + closing)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    found: dict[str, Any] = {name: summary(samples) for name, samples in times.items()}
    found["vm_whole_over_vm_job_p50"] = found["vm_whole"]["p50"] / found["vm_job"]["p50"]
    found["runs"], found["accel"] = runs, accel
    found["mean_vm_whole"] = statistics.fmean(times["vm_whole"])
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--accel", choices=("tcg", "kvm"), default="tcg")
    args = parser.parse_args()
    found = asyncio.run(measure(args.runs, args.accel))
    print(f"\n{args.runs} rounds, {args.accel}\n")
    print("| | open p50 | one command p50 | close p50 | whole p50 | whole p99 |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name in ("vm", "bubblewrap"):
        row = [found[f"{name}_{part}"]["p50"] for part in ("open", "run", "close", "whole")]
        cells = " | ".join(f"{value:.3f} s" for value in row)
        print(f"| {name} session | {cells} | {found[f'{name}_whole']['p99']:.3f} s |")
    job = found["vm_job"]
    print(f"| vm job | | | | {job['p50']:.3f} s | {job['p99']:.3f} s |")
    print(f"\nVM sandbox session / VM job, whole at p50: {found['vm_whole_over_vm_job_p50']:.2f}x")
    print(json.dumps(found))


if __name__ == "__main__":
    main()
