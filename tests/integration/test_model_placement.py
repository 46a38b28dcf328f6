"""Where model hosts land on a two-node cluster whose second node declares a GPU: the host of
a model goes to the GPU node, asks for a GPU and is reported on it; without a GPU node it runs
on CPU. (No CUDA device here: the GPU is a declared resource, and llama.cpp's CPU build ignores
the offload; a real GPU is checked only where one is lent.) And a model's hosts follow its
calls: the ModelRegistry actor adds a host on the other node while calls queue, callers route
over both, the extra host is drained and stopped once calls stop, and a host that dies is
replaced; a host no GPU node has room for becomes part of the job dispatcher's request to Ray's
autoscaler."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import ray
from ray.cluster_utils import Cluster

from ember.actors.builder import start_job_system, start_model_registry
from ember.actors.model_access import RayModelAccess
from ember.actors.model_registry import ModelRegistryActor, RayLauncher
from ember.chat import GenerationOptions
from ember.config import load_config
from ember.config.models import ModelsConfig
from ember.errors import ProviderUnavailable
from ember.models import LoadedModel, ModelRecord, ModelRegistry, SqlModelCatalog
from ember.models.replicas import ReplicaSet
from ember.providers.llamacpp import LlamaCppProvider
from tests.support.autoscaler import standing_request
from tests.support.cluster import ray_cluster

pytestmark = pytest.mark.slow


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    """A head of two CPUs; each test adds its nodes and joins it."""
    with ray_cluster(2) as made:
        yield made


async def test_a_host_lands_on_the_gpu_node_and_holds_a_gpu(
    cluster: Cluster, catalog: SqlModelCatalog, gemma: ModelRecord
) -> None:
    gpu_node = cluster.add_node(num_cpus=2, num_gpus=1)
    ray.init(address=cluster.address)
    cluster.wait_for_nodes()
    launcher = RayLauncher(ModelsConfig())
    nodes = {node.node_id: node for node in await launcher.nodes()}
    assert nodes[gpu_node.node_id].gpu
    assert sum(node.gpu for node in nodes.values()) == 1
    assert nodes[gpu_node.node_id].capacity_bytes > gemma.size_bytes, "no CUDA: RAM fallback"
    registry = ModelRegistry(catalog, launcher, ModelsConfig())
    try:
        host = await registry.acquire(gemma.name)
        (loaded,) = await registry.ps()
        assert (loaded.node_id, loaded.gpu) == (gpu_node.node_id, True)
        assert ray.available_resources().get("GPU", 0) == 0, "the host holds the GPU"
        options = GenerationOptions(max_tokens=4, temperature=0)
        answer = await host.complete("Question: What is the capital of France?\nAnswer:", options)
        assert "Paris" in answer.text
    finally:
        await registry.close()


async def test_without_a_gpu_node_the_host_runs_on_cpu(
    cluster: Cluster, catalog: SqlModelCatalog, gemma: ModelRecord
) -> None:
    ray.init(address=cluster.address)
    registry = ModelRegistry(catalog, RayLauncher(ModelsConfig()), ModelsConfig())
    try:
        await registry.acquire(gemma.name)
        (loaded,) = await registry.ps()
        assert loaded.gpu is False
    finally:
        await registry.close()


async def until(check: Callable[[], Awaitable[bool]], what: str, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        await asyncio.sleep(0.1)


async def test_a_models_hosts_follow_its_calls_across_both_nodes(
    cluster: Cluster, tmp_path: Path, gemma: ModelRecord
) -> None:
    cluster.add_node(num_cpus=2)
    ray.init(address=cluster.address)
    cluster.wait_for_nodes()
    config = load_config(
        None,
        {
            "EMBER_HOME": str(tmp_path),
            "EMBER_MODELS_BUNDLED": "false",
            "EMBER_MODELS_REPLICAS_MAX": "2",
            "EMBER_MODELS_CALLS_PER_REPLICA_TARGET": "1",
            # long enough that the second host is still there for the fresh caller's burst
            # on a loaded machine (at 2 s it was once drained first)
            "EMBER_MODELS_SCALE_COOLDOWN_S": "6",
            "EMBER_MODELS_SCALE_INTERVAL_S": "0.2",
            "EMBER_MODELS_ROUTE_REFRESH_S": "0.2",
            "EMBER_MODELS_SWEEP_INTERVAL_S": "0.5",
        },
    )
    registry = ray.remote(ModelRegistryActor).options(num_cpus=0).remote(config)
    await registry.start.remote()
    access = RayModelAccess(registry, refresh_s=0.2)
    provider = LlamaCppProvider("local", access)
    options = GenerationOptions(max_tokens=48, temperature=0)

    async def ps() -> LoadedModel:
        (loaded,) = await registry.ps.remote()
        return loaded

    async def route() -> ReplicaSet[Any]:
        _, hosts = await access.open(gemma.name, None)
        assert isinstance(hosts, ReplicaSet)
        return hosts

    assert (await ps()).replicas == 1
    calls = [provider.generate(gemma.name, "Once upon a time", options) for _ in range(6)]
    running = asyncio.gather(*calls)

    async def two_hosts() -> bool:
        return (await ps()).replicas == 2

    await until(two_hosts, "the busy model has a second host")
    assert len(set((await ps()).nodes)) == 2, "the second host went to the node without one"
    assert all(answer.text for answer in await running)

    fresh_access = RayModelAccess(registry, refresh_s=0.2)
    fresh = LlamaCppProvider("local", fresh_access)
    more = asyncio.gather(*(fresh.generate(gemma.name, "Hello", options) for _ in range(4)))
    _, both = await fresh_access.open(gemma.name, None)
    assert isinstance(both, ReplicaSet)
    await until(lambda: _started(both, 4), "four calls are in flight")
    assert both.in_flight() == [2, 2], "a new caller's first burst spreads over both hosts"
    assert all(answer.text for answer in await more)

    async def one_host() -> bool:
        return (await ps()).replicas == 1

    await until(one_host, "the calm model is back to one host")

    async def stopped() -> list[bool]:
        gone = []
        for host in both.hosts:
            try:
                await host.busy()
            except ProviderUnavailable:
                gone.append(True)
            else:
                gone.append(False)
        return gone

    await until(lambda: _count(stopped(), True, 1), "the drained host was stopped")

    async def routed_over(count: int) -> bool:
        await provider.generate(gemma.name, "Say", GenerationOptions(max_tokens=2, temperature=0))
        return len((await route()).hosts) == count

    await until(lambda: routed_over(1), "callers route over the one host left")
    (survivor,) = (await route()).hosts
    ray.kill(survivor.actor, no_restart=True)

    async def answered() -> bool:
        try:
            answer = await provider.generate(gemma.name, "Hello", options)
        except ProviderUnavailable:
            return False
        return bool(answer.text)

    await until(answered, "a call is answered by a new host after the last one died")
    (replacement,) = (await route()).hosts
    assert replacement.actor != survivor.actor


async def _count(flags: Awaitable[list[bool]], value: bool, count: int) -> bool:
    return (await flags).count(value) == count


async def _started(replicas: ReplicaSet[Any], calls: int) -> bool:
    return sum(replicas.in_flight()) == calls


async def test_a_host_no_node_has_room_for_is_asked_of_the_autoscaler(
    cluster: Cluster, tmp_path: Path, gemma: ModelRecord
) -> None:
    cluster.add_node(num_cpus=2, num_gpus=1)
    ray.init(address=cluster.address)
    cluster.wait_for_nodes()
    config = load_config(
        None,
        {
            "EMBER_HOME": str(tmp_path),
            "EMBER_RAY_DASHBOARD": "false",
            "EMBER_MODELS_BUNDLED": "false",
            "EMBER_MODELS_REPLICAS_MAX": "3",
            "EMBER_MODELS_CALLS_PER_REPLICA_TARGET": "1",
            "EMBER_MODELS_SCALE_COOLDOWN_S": "60",
            "EMBER_MODELS_SCALE_INTERVAL_S": "0.2",
            "EMBER_JOBS_WORKERS_MIN": "0",
            "EMBER_JOBS_POLL_INTERVAL_S": "0.2",
        },
    )
    registry = start_model_registry(config)
    jobs = start_job_system(config)
    provider = LlamaCppProvider("local", RayModelAccess(registry))
    options = GenerationOptions(max_tokens=64, temperature=0)
    running = asyncio.gather(
        *(provider.generate(gemma.name, "Once upon a time", options) for _ in range(8))
    )
    gpu_host = {"CPU": 0.5, "GPU": 1.0}

    async def requested() -> bool:
        stats = await jobs.dispatcher.stats.remote()
        return bool(stats["resource_request"])

    await until(requested, "the dispatcher asks for room")
    stats = await jobs.dispatcher.stats.remote()
    assert stats["resource_request"] == [gpu_host] * 3, (
        "the host that holds the GPU node's one GPU, and two more GPU hosts no node has a GPU "
        "for (a model on a GPU does not grow onto the CPU head; no job worker is wanted)"
    )
    assert standing_request() == [gpu_host] * 3
    assert all(answer.text for answer in await running)

    async def cleared() -> bool:
        stats = await jobs.dispatcher.stats.remote()
        return stats["resource_request"] == [] and standing_request() == []

    await until(cleared, "the request is cleared once the calls are answered")
