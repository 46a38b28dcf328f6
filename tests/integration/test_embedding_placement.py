"""Where embedding workers land, on one cluster whose head is CPU-only and whose second node
(added when a test needs it) declares a GPU: with the GPU node the pool's workers go there and
hold GPU fractions; without it they run on CPU; a group that cannot be placed fails in time;
under load the pool grows within its bounds and shrinks back after the cooldown. (No CUDA
device here: the GPU is a declared resource, so torch runs on CPU; a real GPU is checked only
where one is lent.)"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import ray
from pydantic import ValidationError
from ray.cluster_utils import Cluster
from ray.util.placement_group import placement_group_table

from ember.actors.embedding_pool import EmbeddingPool
from ember.actors.placement_groups import reserve
from ember.config import EmberConfig, load_config
from ember.config.models import EmbeddingsConfig
from ember.errors import ProviderUnavailable
from ember.observability import REQUEST_ID
from ember.observability.traces import RecentTraces
from ember.observability.tracing import Tracing, span
from ember.placement.bundles import worker_resources
from ember.storage import Database, Migrator
from tests.support.cluster import ray_cluster
from tests.support.hub_traces import named_hub, spans_of

pytestmark = pytest.mark.slow

TEXTS = [
    "Ray places actors on nodes that have the resources they ask for.",
    "A placement group reserves bundles of resources across the cluster.",
    "Sentence embeddings map text to vectors.",
    "The cat sat on the mat.",
]


@dataclass
class Lab:
    """The shared cluster and its GPU node, when one is up."""

    cluster: Cluster
    gpu: Any = None

    def with_gpu(self) -> Any:
        if self.gpu is None:
            self.gpu = self.cluster.add_node(num_cpus=2, num_gpus=1)
            self.cluster.wait_for_nodes()
        return self.gpu

    def without_gpu(self) -> None:
        if self.gpu is not None:
            self.cluster.remove_node(self.gpu)
            self.gpu = None
            self.cluster.wait_for_nodes()


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with ray_cluster(2, connect=True) as made:
        yield Lab(made)


def _config(**embeddings: Any) -> EmberConfig:
    return EmberConfig(embeddings=EmbeddingsConfig(**embeddings))


@pytest.fixture(scope="module")
def cpu_pool(lab: Lab) -> Iterator[EmbeddingPool]:
    """A pool started while the cluster has no GPU; it may grow to 2, cooling down in 1 s."""
    lab.without_gpu()
    config = _config(workers_min=1, workers_max=2, scale_cooldown_s=1.0)
    with EmbeddingPool(config, target_per_worker=1, tick_s=0.2) as pool:
        yield pool


def _poll(predicate: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


@pytest.mark.parametrize(
    ("cluster", "cpus", "gpus", "expected"),
    [
        ({"CPU": 4.0}, 0.5, 0.25, {"CPU": 0.5}),
        ({"CPU": 4.0, "GPU": 0.0}, 0.5, 0.25, {"CPU": 0.5}),
        ({"CPU": 4.0, "GPU": 2.0}, 0.5, 0.25, {"CPU": 0.5, "GPU": 0.25}),
        ({"CPU": 4.0, "GPU": 2.0}, 1.0, 0.0, {"CPU": 1.0}),
        ({"CPU": 4.0, "GPU": 2.0}, 1.0, 2.0, {"CPU": 1.0, "GPU": 2.0}),
    ],
)
def test_worker_resources_ask_for_a_gpu_only_where_the_cluster_has_one(
    cluster: dict[str, float], cpus: float, gpus: float, expected: dict[str, float]
) -> None:
    assert worker_resources(cluster, cpus, gpus) == expected


@pytest.mark.parametrize(("cpus", "gpus"), [(-1.0, 0.0), (0.5, -0.25), (0.5, 1.5)])
def test_worker_resources_reject_what_ray_cannot_grant(cpus: float, gpus: float) -> None:
    with pytest.raises(ValueError, match="num_"):
        worker_resources({"GPU": 4.0}, cpus, gpus)


def test_workers_max_below_workers_min_is_invalid() -> None:
    with pytest.raises(ValidationError, match="below workers_min"):
        EmbeddingsConfig(workers_min=3, workers_max=2)


def test_without_a_gpu_node_workers_ask_for_no_gpu_and_run_on_cpu(
    lab: Lab, cpu_pool: EmbeddingPool
) -> None:
    assert cpu_pool.resources == {"CPU": 0.5}
    (worker,) = cpu_pool.workers()
    assert worker["gpu_ids"] == []
    assert worker["device"] == "cpu"
    assert worker["node_id"] == lab.cluster.head_node.node_id
    assert cpu_pool.embed_documents([]).shape == (0, cpu_pool.dim)
    assert cpu_pool.embed_query("a query").shape == (cpu_pool.dim,)


def test_a_workers_embedding_is_a_span_of_the_callers_trace(
    cpu_pool: EmbeddingPool, tmp_path: Path
) -> None:
    config = load_config(None, {"EMBER_HOME": str(tmp_path)})
    database = Database.from_config(config)
    Migrator(database).upgrade()
    with named_hub(config) as store:
        tracing = Tracing(config.tracing, "test", store=RecentTraces())
        token = REQUEST_ID.set("req-embed")
        try:
            with span(tracing.tracer("test"), "caller") as caller:
                cpu_pool.embed_documents(TEXTS)
        finally:
            REQUEST_ID.reset(token)
            tracing.shutdown()
        context = caller.get_span_context()
        (served,) = spans_of(store, f"{context.trace_id:032x}", 1)
    database.dispose()
    assert (served.name, served.kind, served.service) == (
        f"embeddings {cpu_pool.model_id}",
        "server",
        "ember-embedding-worker",
    )
    assert served.parent_id == f"{context.span_id:016x}"
    assert served.attributes["gen_ai.operation.name"] == "embeddings"
    assert served.attributes["ember.embedding.inputs"] == len(TEXTS)
    assert served.attributes["ember.request_id"] == "req-embed"


def test_the_pool_grows_under_load_and_shrinks_after_the_cooldown(
    cpu_pool: EmbeddingPool,
) -> None:
    assert cpu_pool.size == 1
    stop = threading.Event()
    failures: list[BaseException] = []
    sizes: list[int] = []

    def load() -> None:
        while not stop.is_set():
            try:
                cpu_pool.embed_documents(TEXTS)
            except BaseException as exc:
                failures.append(exc)
                return

    def extra_serves() -> bool:
        sizes.append(cpu_pool.size)
        return any(worker["extra"] for worker in cpu_pool.workers())

    threads = [threading.Thread(target=load) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        grown = _poll(extra_serves, 120)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert not failures
    assert grown, f"sizes seen: {sorted(set(sizes))}"
    assert max(sizes) == 2
    assert _poll(lambda: cpu_pool.size == 1 and len(cpu_pool.workers()) == 1, 60)
    (left,) = cpu_pool.workers()
    assert not left["extra"]
    assert cpu_pool.queue_depth == 0


@pytest.mark.timeout(60)
def test_a_group_that_cannot_be_placed_fails_within_its_timeout(lab: Lab) -> None:
    lab.with_gpu()
    with pytest.raises(ProviderUnavailable, match=r"cannot place 3 worker\(s\)"):
        reserve({"CPU": 0.1, "GPU": 1.0}, 3, strategy="PACK", timeout_s=2.0)
    config = _config(workers_min=3, workers_max=3, worker_num_gpus=1.0, placement_timeout_s=2.0)
    with pytest.raises(ProviderUnavailable, match=r"cannot place 3 worker\(s\) of 0\.5 CPU, 1 GPU"):
        EmbeddingPool(config, tick_s=None)
    states = [group["state"] for group in placement_group_table().values()]
    assert "PENDING" not in states, "a group that failed is left waiting for room"
    assert _poll(lambda: ray.available_resources().get("GPU") == 1.0, 10)


def test_with_a_gpu_node_workers_land_there_together_and_embed_correctly(lab: Lab) -> None:
    gpu_node = lab.with_gpu()
    config = _config(workers_min=2, workers_max=2, placement_strategy="STRICT_PACK")
    with EmbeddingPool(config, tick_s=None) as pool:
        assert pool.resources == {"CPU": 0.5, "GPU": 0.25}
        workers = pool.workers()
        assert [worker["node_id"] for worker in workers] == [gpu_node.node_id] * 2
        assert all(worker["gpu_ids"] for worker in workers), "Ray assigned each a GPU"
        assert ray.available_resources().get("GPU") == pytest.approx(0.5)
        from ember.providers.sentence_transformers import SentenceTransformerEmbedder

        direct = SentenceTransformerEmbedder()
        assert pool.model_id == direct.model_id
        assert np.allclose(pool.embed_documents(TEXTS), direct.embed_documents(TEXTS), atol=1e-5)
        assert np.allclose(pool.embed_query(TEXTS[0]), direct.embed_query(TEXTS[0]), atol=1e-5)
    assert _poll(lambda: ray.available_resources().get("GPU") == 1.0, 10), "close frees the GPU"
