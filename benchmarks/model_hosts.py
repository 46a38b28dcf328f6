"""Tokens per second of the bundled model with one host against two, on a local Ray cluster.

A ModelRegistry actor hosts Gemma 3 270M (the bundled model) on a local Ray cluster of
``--cpus`` CPUs. ``--calls`` generate calls of ``--tokens`` tokens each are sent at once
through the llama.cpp provider, as a Serve replica sends them (``RayModelAccess``), and timed
from the first send to the last answer. Run 1: ``models.replicas_max`` 1 (the default, one
host). Run 2: ``replicas_min`` and ``replicas_max`` 2, measured once both hosts are up. The
ratio is run 2's completion tokens per second over run 1's, from the same process. A third
run starts at one host with ``replicas_max`` 2 and reports how long a burst takes to bring the
second host up (from the first send until the registry lists two hosts).

    .venv/bin/python benchmarks/model_hosts.py [--cpus 2] [--calls 8] [--tokens 64] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

PROMPTS = [
    "Once upon a time",
    "The history of the printing press",
    "Question: Why is the sky blue?\nAnswer:",
    "A recipe for bread:",
]


def _config(home: Path, replicas_min: int, replicas_max: int) -> Any:
    from ember.config import load_config
    from ember.storage import Database, Migrator

    config = load_config(
        None,
        {
            "EMBER_HOME": str(home),
            "EMBER_MODELS_REPLICAS_MIN": str(replicas_min),
            "EMBER_MODELS_REPLICAS_MAX": str(replicas_max),
            "EMBER_MODELS_CALLS_PER_REPLICA_TARGET": "1",
            "EMBER_MODELS_SCALE_INTERVAL_S": "0.2",
            "EMBER_MODELS_SCALE_COOLDOWN_S": "600",
        },
    )
    database = Database.from_config(config)
    Migrator(database).upgrade()
    database.dispose()
    return config


async def _hosts(registry: Any) -> int:
    loaded = await registry.ps.remote()
    return int(loaded[0].replicas) if loaded else 0


async def _burst(provider: Any, model: str, calls: int, tokens: int) -> tuple[float, int]:
    from ember.chat import GenerationOptions

    options = GenerationOptions(max_tokens=tokens, temperature=0)
    started = time.perf_counter()
    answers = await asyncio.gather(
        *(provider.generate(model, PROMPTS[i % len(PROMPTS)], options) for i in range(calls))
    )
    elapsed = time.perf_counter() - started
    return elapsed, sum(answer.usage.completion_tokens for answer in answers)


async def _run(config: Any, args: argparse.Namespace, want_hosts: int) -> dict[str, Any]:
    import ray

    from ember.actors.model_access import RayModelAccess
    from ember.actors.model_registry import ModelRegistryActor
    from ember.providers.llamacpp import LlamaCppProvider

    registry = ray.remote(ModelRegistryActor).options(num_cpus=0).remote(config)
    await registry.start.remote()
    model = "gemma3-270m"
    provider = LlamaCppProvider("local", RayModelAccess(registry, refresh_s=0.2))
    while await _hosts(registry) < want_hosts:
        await asyncio.sleep(0.2)
    await _burst(provider, model, want_hosts, 8)
    rates = []
    for _ in range(args.rounds):
        elapsed, tokens = await _burst(provider, model, args.calls, args.tokens)
        rates.append(tokens / elapsed)
    await registry.unload.remote(model)
    ray.kill(registry)
    return {"hosts": want_hosts, "tokens_per_s": rates, "median": statistics.median(rates)}


async def _scale_up(config: Any, args: argparse.Namespace) -> float:
    import ray

    from ember.actors.model_access import RayModelAccess
    from ember.actors.model_registry import ModelRegistryActor
    from ember.providers.llamacpp import LlamaCppProvider

    registry = ray.remote(ModelRegistryActor).options(num_cpus=0).remote(config)
    await registry.start.remote()
    provider = LlamaCppProvider("local", RayModelAccess(registry, refresh_s=0.2))
    started = time.perf_counter()
    burst = asyncio.ensure_future(_burst(provider, "gemma3-270m", args.calls, args.tokens))
    while await _hosts(registry) < 2:
        await asyncio.sleep(0.05)
    grown = time.perf_counter() - started
    await burst
    ray.kill(registry)
    return grown


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    import ray

    ray.init(address="local", num_cpus=args.cpus, include_dashboard=False)
    try:
        with tempfile.TemporaryDirectory() as folder:
            home = Path(folder)
            one = await _run(_config(home, 1, 1), args, 1)
            two = await _run(_config(home, 2, 2), args, 2)
            grown = await _scale_up(_config(home, 1, 2), args)
    finally:
        ray.shutdown()
    return {
        "cpus": args.cpus,
        "calls": args.calls,
        "tokens_per_call": args.tokens,
        "one_host": one,
        "two_hosts": two,
        "ratio_two_over_one": two["median"] / one["median"],
        "second_host_up_after_s": grown,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--calls", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    print(json.dumps(asyncio.run(_main(parser.parse_args())), indent=2))


if __name__ == "__main__":
    main()
