"""``agent`` jobs on a real Ray cluster over HTTP, as ``ember up`` runs them: the job runs on
an agent-pool worker actor (its own pool, sized by the agent queue), in a real bubblewrap
sandbox, with the scripted chat fake as the model, and its artifacts and transcript come back
through the Serve app."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import ray

from ember.actors.names import DISPATCHER, NAMESPACE
from ember.auth import SqlTokenRepository
from ember.config import load_config
from tests.fakes.scripted_chat_fake import ScriptedCall, ScriptedChatServer, Turn
from tests.support.cluster import ember_settings, importable_tests, migrated, running_ember

pytestmark = pytest.mark.slow

TIMEOUT_S = 120.0


@dataclass
class Cluster:
    url: str
    model: ScriptedChatServer
    headers: dict[str, str]

    def call(self, method: str, path: str, **options: Any) -> httpx.Response:
        return httpx.request(
            method, f"{self.url}{path}", headers=self.headers, timeout=TIMEOUT_S, **options
        )

    def finished(self, job_id: str) -> dict[str, Any]:
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            job: dict[str, Any] = self.call("GET", f"/jobs/{job_id}").json()
            if job["state"] in ("succeeded", "failed", "cancelled"):
                return job
            time.sleep(0.2)
        raise AssertionError(f"job {job_id} did not finish")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    importable_tests()
    with ScriptedChatServer(model="agent-model") as model:
        providers = {
            "scripted": {"kind": "openai", "base_url": model.base_url, "api_key": "unused"},
            "embeddings": {"kind": "sentence-transformers"},
        }
        config = load_config(
            None,
            ember_settings(
                tmp_path_factory.mktemp("agents-ray"),
                EMBER_RAY_NUM_CPUS="4",
                EMBER_RAY_DASHBOARD="false",
                EMBER_MODELS_BUNDLED="false",
                EMBER_JOBS_POLL_INTERVAL_S="0.2",
                EMBER_AGENTS_WORKERS_MAX="2",
                EMBER_AGENTS_SLOTS_PER_WORKER="1",
                EMBER_PROVIDERS_INSTANCES=json.dumps(providers),
                EMBER_ROUTER_DEFAULT_PROVIDER="scripted",
                EMBER_ROUTER_ALIASES=json.dumps({"default": ["scripted/agent-model"]}),
            ),
        )
        with migrated(config) as database:
            token = SqlTokenRepository(database).create("ci", "ci", ["admin"])[1]
            with running_ember(config, database) as running:
                yield Cluster(running.url, model, {"Authorization": f"Bearer {token}"})


def test_an_agent_job_runs_on_the_agent_pool_and_leaves_its_file(cluster: Cluster) -> None:
    profile = {
        "name": "scribe",
        "model": "default",
        "tools": ["write_file", "run_command", "search_memory"],
    }
    assert cluster.call("POST", "/agents", json=profile).status_code == 201
    assert cluster.call("POST", "/collections", json={"name": "notes"}).status_code == 201
    document = {"source": "volcano.md", "text": "Lava is molten rock from volcanoes."}
    added = cluster.call("POST", "/collections/notes/documents", json={"documents": [document]})
    assert added.status_code == 200
    cluster.model.load(
        [
            Turn(calls=[ScriptedCall("write_file", {"path": "a.txt", "content": "hello"})]),
            Turn(calls=[ScriptedCall("run_command", {"command": "cat a.txt; hostname"})]),
            Turn(calls=[ScriptedCall("search_memory", {"collection": "notes", "query": "lava"})]),
            Turn(text="Lava is molten rock [1]."),
        ]
    )
    created = cluster.call(
        "POST", "/jobs", json={"kind": "agent", "input": {"agent": "scribe", "task": "go"}}
    )
    assert created.status_code == 201, created.text
    job_id = created.json()["id"]
    job = cluster.finished(job_id)
    assert job["state"] == "succeeded", job
    pools = ray.get(ray.get_actor(DISPATCHER, namespace=NAMESPACE).stats.remote())["pools"]
    assert pools["agent"]["size"] >= 1, "the agent pool grew for the queued agent job"

    tools = [m["content"] for m in cluster.model.requests[-1]["messages"] if m["role"] == "tool"]
    assert "hello" in tools[1] and "sandbox" in tools[1], "cat and hostname ran in the sandbox"
    assert "volcano.md" in tools[2]
    result = cluster.call("GET", f"/jobs/{job_id}/result").json()["result"]
    assert result["answer"] == "Lava is molten rock [1]."
    file = cluster.call("GET", f"/jobs/{job_id}/artifacts/a.txt")
    assert file.status_code == 200 and file.content == b"hello"
    transcript = cluster.call("GET", f"/jobs/{job_id}/transcript").json()
    assert transcript["status"] == "completed" and len(transcript["steps"]) == 4
