"""Two nodes, Postgres and Milvus Lite: jobs, a bulk ingest and search across both nodes.

The same code as the single-machine default; the configuration is the only difference: the
database is a real Postgres server, vectors live in Milvus Lite (each shard's database owned
by one VectorShard actor), and ``ember`` joins a two-node ``ray.cluster_utils.Cluster``
through its address instead of starting a cluster of its own.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import ray
from ray._private import state
from ray.cluster_utils import Cluster

from ember.config import load_config
from tests.integration.test_jobs import job_settings
from tests.support.cluster import importable_tests, ray_cluster, running_ember
from tests.support.postgres import PostgresServer

pytestmark = pytest.mark.slow

TIMEOUT_S = 300.0
TOPICS = {
    "Tides": "The moon's gravity pulls the oceans and the tides rise and fall twice a day.",
    "Volcanoes": "Magma rises through the crust and erupts as lava, ash and gas.",
    "Vaccines": "A vaccine trains the immune system to recognise a pathogen early.",
}


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """A head with one CPU and a worker node with three: ember's actors cannot all fit on
    the head, so Ray places them on both."""
    with ray_cluster(1, {"num_cpus": 3}) as nodes:
        yield nodes


def _corpus(folder: Path, copies: int = 10) -> Path:
    folder.mkdir(parents=True)
    lines = [
        json.dumps({"_id": f"{title.lower()}-{copy}", "title": title, "text": f"{text} ({copy})"})
        for copy in range(copies)
        for title, text in TOPICS.items()
    ]
    (folder / "corpus.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def _until_done(url: str, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        job = httpx.get(f"{url}/jobs/{job_id}", timeout=30).json()
        if job["state"] in ("succeeded", "failed", "cancelled"):
            return dict(job)
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} did not finish")


def _submit(url: str, kind: str, payload: dict[str, Any]) -> str:
    response = httpx.post(f"{url}/jobs", json={"kind": kind, "input": payload}, timeout=60)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def test_jobs_ingest_and_search_across_two_nodes_on_postgres_and_milvus(
    cluster: Cluster, postgres_server: PostgresServer, tmp_path: Path
) -> None:
    importable_tests()
    corpus = _corpus(tmp_path / "data")
    home = tmp_path / "home"
    config = load_config(
        None,
        job_settings(
            home,
            EMBER_RAY_ADDRESS=cluster.address,
            EMBER_DATABASE_URL=postgres_server.create_database(),
            EMBER_MEMORY_VECTOR_BACKEND="milvus",
            EMBER_MEMORY_SHARDS="2",
            EMBER_MEMORY_INGEST_ROOTS=str(tmp_path / "data"),
            EMBER_MEMORY_CHUNK_TOKENS="48",
            EMBER_MEMORY_CHUNK_OVERLAP="8",
            EMBER_EMBEDDINGS_WORKER_NUM_CPUS="0.5",
            EMBER_EMBEDDINGS_WORKERS_MAX="2",
        ),
    )
    with running_ember(config) as ember:
        assert not ember.info.started_here
        url = ember.url
        steps = _submit(url, "steps", {"steps": 3, "step_s": 0.05})
        ingest = _submit(
            url, "ingest", {"collection": "science", "path": str(corpus), "create": True}
        )
        assert _until_done(url, steps)["state"] == "succeeded"
        job = _until_done(url, ingest)
        assert job["state"] == "succeeded", job
        result = httpx.get(f"{url}/jobs/{ingest}/result", timeout=30).json()["result"]
        assert result["created"] == 30 and result["failed"] == 0

        outside = _submit(url, "ingest", {"collection": "science", "path": str(tmp_path)})
        refused = _until_done(url, outside)
        assert refused["state"] == "failed" and refused["error_code"] == "path_not_allowed"

        found = httpx.post(
            f"{url}/collections/science/search",
            json={"query": "what makes the tides rise", "k": 3, "mode": "dense"},
            timeout=120,
        )
        assert found.status_code == 200, found.text
        assert found.json()["hits"][0]["title"] == "Tides"

        alive = [actor for actor in state.actors().values() if actor["State"] == "ALIVE"]
        assert len({actor["Address"]["NodeID"] for actor in alive}) == 2
        shards = [a for a in alive if a["ActorClassName"].endswith("VectorShardActor")]
        assert len(shards) == 2
        assert sorted(p.name for p in (home / "milvus").iterdir())[0].endswith("-s0.db")
    assert not ray.is_initialized()
