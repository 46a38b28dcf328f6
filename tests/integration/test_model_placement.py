"""Where model hosts land on a two-node cluster whose second node declares a GPU: the host of
a model goes to the GPU node, asks for a GPU and is reported on it; without a GPU node it runs
on CPU. (No CUDA device here: the GPU is a declared resource, and llama.cpp's CPU build ignores
the offload; a real GPU is checked only where one is lent.)"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import ray
from ray.cluster_utils import Cluster

from ember.actors.model_registry import RayLauncher
from ember.config.models import ModelsConfig
from ember.models import ModelRecord, ModelRegistry, SqlModelCatalog
from ember.providers.types import GenerationOptions

pytestmark = pytest.mark.slow


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    made = Cluster(initialize_head=True, head_node_args={"num_cpus": 2})
    try:
        yield made
    finally:
        ray.shutdown()
        made.shutdown()


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
