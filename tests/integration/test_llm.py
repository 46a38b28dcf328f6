"""The bundled model on a real Ray cluster: the ModelRegistry and ModelHost actors behind the
Serve app, reached with the official ``openai`` and ``ollama`` clients, unchanged.

A fake OpenAI-compatible cloud sits behind the alias ``smart`` as the fallback of a local
model that is registered but whose file is gone, so one request shows the local-first order
and the fallback across real actors.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import ollama
import openai
import pytest
from typer.testing import CliRunner

from ember.actors.model_access import RayModelAccess
from ember.actors.model_registry import RayLauncher
from ember.cli import app as cli_app
from ember.config import EmberConfig
from ember.config.models import ModelsConfig
from ember.models import ModelRecord, SqlModelCatalog
from ember.models.bundle import BUNDLED_MODEL
from ember.storage import Database, SqlUsageLog
from ember.testing.model_access import HostLauncherContract, ModelAccessContract
from tests.fakes.openai_fake import FakeOpenAIServer
from tests.support.cluster import ember_config, migrated, running_ember
from tests.support.models import register_copy

pytestmark = pytest.mark.slow

QUESTION = "What is the capital of France?"


@dataclass
class Ember:
    url: str
    config: EmberConfig
    cloud: FakeOpenAIServer


@pytest.fixture(scope="module")
def ember(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ember]:
    home = tmp_path_factory.mktemp("home")
    cloud = FakeOpenAIServer(models=("gpt-fake",))
    cloud.start()
    instances = {
        "local": {"kind": "llamacpp"},
        "embeddings": {"kind": "sentence-transformers"},
        "cloud": {"kind": "openai", "base_url": cloud.base_url, "api_key": "sk-fake"},
    }
    aliases = {"default": ["local/gemma3-270m"], "smart": ["local/vanished", "cloud/gpt-fake"]}
    config = ember_config(
        home,
        EMBER_RAY_NUM_CPUS="2",
        EMBER_RAY_DASHBOARD="false",
        EMBER_PROVIDERS_INSTANCES=json.dumps(instances),
        EMBER_ROUTER_ALIASES=json.dumps(aliases),
        EMBER_ROUTER_RETRY_ATTEMPTS="1",
        EMBER_AUTH_RATE_LIMIT_PER_S="0",
    )
    try:
        with migrated(config) as database:
            SqlModelCatalog(database).put(
                ModelRecord("vanished", str(home / "gone.gguf"), "sha256:" + "0" * 64, 1000)
            )
            with running_ember(config, database) as running:
                yield Ember(running.url, config, cloud)
    finally:
        cloud.stop()


@pytest.fixture
def openai_client(ember: Ember) -> Iterator[openai.OpenAI]:
    """The official OpenAI client of the ember under test, closed after the test."""
    with openai.OpenAI(base_url=f"{ember.url}/v1", api_key="anything", timeout=60) as client:
        yield client


@pytest.fixture
def ollama_client(ember: Ember) -> Iterator[ollama.Client]:
    """The official Ollama client of the ember under test, closed after the test."""
    with ollama.Client(host=ember.url, timeout=60) as client:
        yield client


def test_ready_waits_for_the_warm_model(ember: Ember) -> None:
    ready = httpx.get(f"{ember.url}/ready", timeout=30)
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"]["models"] == {"ok": True, "detail": "1 warm model(s) loaded"}


def test_openai_client_chats_with_the_bundled_model(
    ember: Ember, openai_client: openai.OpenAI
) -> None:
    client = openai_client
    answer = client.chat.completions.create(
        model="gemma3-270m",
        messages=[{"role": "user", "content": QUESTION}],
        max_tokens=16,
        temperature=0,
    )
    assert "Paris" in (answer.choices[0].message.content or "")
    assert answer.usage is not None and answer.usage.completion_tokens > 0
    stream = client.chat.completions.create(
        model="default",
        messages=[{"role": "user", "content": QUESTION}],
        max_tokens=16,
        temperature=0,
        stream=True,
    )
    pieces = [c.choices[0].delta.content or "" for c in stream if c.choices]
    assert len(pieces) > 1 and "Paris" in "".join(pieces)
    names = {model.id for model in client.models.list()}
    assert {"default", "smart", "gemma3-270m", "local/gemma3-270m", "cloud/gpt-fake"} <= names


def test_ollama_client_chats_generates_and_embeds(
    ember: Ember, ollama_client: ollama.Client
) -> None:
    client = ollama_client
    reply = client.chat(
        model="gemma3-270m",
        messages=[{"role": "user", "content": QUESTION}],
        options={"num_predict": 16, "temperature": 0},
    )
    assert "Paris" in reply.message.content
    parts = list(
        client.generate(
            model="gemma3-270m",
            prompt=f"Question: {QUESTION}\nAnswer:",
            options={"num_predict": 8, "temperature": 0},
            stream=True,
        )
    )
    assert parts[-1].done and "Paris" in "".join(p.response for p in parts)
    vectors = client.embed(model="all-MiniLM-L6-v2", input=["a cat", "a dog"]).embeddings
    assert len(vectors) == 2 and len(vectors[0]) == 384
    (loaded,) = [m for m in client.ps().models if m.model == "gemma3-270m"]
    assert loaded.size and loaded.size > 200_000_000


def test_local_first_falls_back_to_the_cloud_when_the_local_model_cannot_load(
    ember: Ember, openai_client: openai.OpenAI
) -> None:
    client = openai_client
    response = client.chat.completions.with_raw_response.create(
        model="smart", messages=[{"role": "user", "content": "hello there"}], max_tokens=8
    )
    answer = response.parse()
    assert answer.choices[0].message.content == "Echo: hello there"
    assert response.headers["x-ember-provider"] == "cloud"
    database = Database.from_config(ember.config)
    deadline = time.monotonic() + 10
    providers: set[str] = set()
    try:
        while not {"local", "cloud"} <= providers and time.monotonic() < deadline:
            time.sleep(0.1)
            providers = {row.provider for row in SqlUsageLog(database).list()}
    finally:
        database.dispose()
    assert {"local", "cloud"} <= providers, "usage rows are written within a flush interval"


def test_models_cli_shows_and_unloads_what_the_cluster_holds(
    ember: Ember, ollama_client: ollama.Client
) -> None:
    client = ollama_client
    runner = CliRunner()
    env = {"EMBER_HOME": str(ember.config.home_dir)}
    shown = runner.invoke(cli_app, ["models", "ps", "--url", ember.url], env=env)
    assert shown.exit_code == 0, shown.output
    assert "gemma3-270m" in shown.stdout and "CPU" in shown.stdout
    warmed = runner.invoke(cli_app, ["models", "warm", "gemma3-270m", "--url", ember.url], env=env)
    assert warmed.exit_code == 0, warmed.output
    client.generate(model="gemma3-270m", keep_alive=0)
    assert all(m.model != "gemma3-270m" for m in client.ps().models)
    again = client.generate(
        model="gemma3-270m",
        prompt="Question: 2+2?\nAnswer:",
        options={"num_predict": 4, "temperature": 0},
    )
    assert again.done
    assert any(m.model == "gemma3-270m" for m in client.ps().models)


def test_a_missing_model_file_is_reported_not_hidden(
    ember: Ember, tmp_path: Path, openai_client: openai.OpenAI
) -> None:
    client = openai_client
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(
            model="local/vanished", messages=[{"role": "user", "content": "hi"}]
        )
    assert caught.value.status_code == 503
    assert "gone.gguf" in str(caught.value.body)


def _finished(url: str, job_id: str, timeout_s: float = 180.0) -> dict[str, object]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = httpx.get(f"{url}/jobs/{job_id}", timeout=30).json()
        if job["state"] in {"succeeded", "failed", "cancelled"}:
            return dict(job)
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish")


def _events(url: str, job_id: str, kind: str) -> list[dict[str, object]]:
    events = []
    current = ""
    with httpx.stream("GET", f"{url}/jobs/{job_id}/events", timeout=60) as response:
        for line in response.iter_lines():
            if line.startswith("event: "):
                current = line[7:]
            elif line.startswith("data: ") and current == kind:
                events.append(json.loads(line[6:]))
    return events


def test_chat_job_streams_tokens_from_a_worker_actor(ember: Ember) -> None:
    body = {
        "kind": "chat",
        "input": {
            "messages": [{"role": "user", "content": "Tell me about Paris."}],
            "max_tokens": 16,
            "temperature": 0,
        },
    }
    created = httpx.post(f"{ember.url}/jobs", json=body, timeout=30)
    assert created.status_code == 201, created.text
    job = _finished(ember.url, created.json()["id"])
    assert job["state"] == "succeeded", job
    result = httpx.get(f"{ember.url}/jobs/{job['id']}/result", timeout=30).json()["result"]
    assert "Paris" in result["text"] and result["provider"] == "local"
    tokens = _events(ember.url, str(job["id"]), "token")
    assert len(tokens) > 1
    assert "".join(str(e["text"]) for e in tokens) == result["text"]


def test_ask_job_answers_from_a_collection_with_citations(ember: Ember) -> None:
    created = httpx.post(f"{ember.url}/collections", json={"name": "geo"}, timeout=30)
    assert created.status_code == 201, created.text
    documents = [
        {"source": "france.txt", "text": "The capital of France is Paris, on the Seine."},
        {"source": "peru.txt", "text": "The capital of Peru is Lima, on the Pacific coast."},
    ]
    ingested = httpx.post(
        f"{ember.url}/collections/geo/documents", json={"documents": documents}, timeout=120
    )
    assert ingested.status_code == 200, ingested.text
    body = {
        "kind": "ask",
        "input": {
            "collection": "geo",
            "question": "What is the capital of Peru?",
            "top_k": 2,
            "temperature": 0,
        },
    }
    submitted = httpx.post(f"{ember.url}/jobs", json=body, timeout=30)
    assert submitted.status_code == 201, submitted.text
    job = _finished(ember.url, submitted.json()["id"])
    assert job["state"] == "succeeded", job
    result = httpx.get(f"{ember.url}/jobs/{job['id']}/result", timeout=30).json()["result"]
    assert "Lima" in result["answer"]
    assert result["tokens_used"] <= result["budget"]
    sources = {c["source"] for c in result["context"]}
    assert "peru.txt" in sources
    for citation in result["citations"]:
        assert citation["source"] in sources and citation["version"] == 1
        assert 0 <= citation["char_start"] < citation["char_end"]
    _assert_one_trace_across_processes(ember.url, job)


def _assert_one_trace_across_processes(url: str, job: dict[str, object]) -> None:
    """The ask job's trace: the API's request span, the worker's attempt with its retrieval
    and model call, and the model host's own span of that call, in one tree."""
    deadline = time.monotonic() + 30
    while True:
        response = httpx.get(f"{url}/jobs/{job['id']}/trace", timeout=30)
        flat = _flat(response.json().get("roots", [])) if response.status_code == 200 else []
        services = {s["service"] for s in flat}
        if {"ember-api", "ember-worker", "ember-model-host"} <= services and any(
            s["name"] == "job ask" and s["end_ns"] for s in flat
        ):
            break
        assert time.monotonic() < deadline, [(s["service"], s["name"]) for s in flat]
        time.sleep(0.2)
    assert response.json()["trace_id"] == job["trace_id"]
    by_name = {s["name"]: s for s in flat}
    submit, attempt = by_name["POST /jobs"], by_name["job ask"]
    assert (submit["service"], attempt["service"]) == ("ember-api", "ember-worker")
    assert attempt["parent_id"] == submit["span_id"]
    assert by_name["retrieval geo"]["parent_id"] == attempt["span_id"]
    call = by_name["chat default"]
    assert call["parent_id"] == attempt["span_id"]
    (client,) = [s for s in flat if s["name"] == "chat gemma3-270m"]
    (server,) = [s for s in flat if s["service"] == "ember-model-host"]
    assert client["kind"] == "client" and client["parent_id"] == call["span_id"]
    assert server["kind"] == "server" and server["parent_id"] == client["span_id"]
    assert server["name"] == "text_completion gemma3-270m", "a plain-prompt model completes"
    assert server["service"] == "ember-model-host"
    request_ids = {s["attributes"].get("ember.request_id") for s in flat}
    assert request_ids == {job["request_id"]}, "every span, the model host's too"
    assert server["attributes"]["gen_ai.provider.name"] == "llama.cpp"
    assert server["attributes"]["gen_ai.usage.output_tokens"] > 0


def _flat(spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [n for s in spans for n in [s, *_flat(s["children"])]]


class TestRayModelAccess(ModelAccessContract):
    """The ModelAccess contract over the module's ModelRegistry actor (the bundled model is its
    warm one; ``vanished`` is not warm). The actor sweeps every ``models.sweep_interval_s``
    (5 s), so an expired model goes within 15 s. Each test leaves the model loaded."""

    unloads_expired_within_s = 15.0

    @pytest.fixture
    async def access(self, ember: Ember) -> AsyncIterator[RayModelAccess]:
        database = Database.from_config(ember.config)
        try:
            catalog = SqlModelCatalog(database)
            register_copy(catalog, catalog.get(BUNDLED_MODEL), self.cold_model)
        finally:
            database.dispose()
        access = RayModelAccess()
        try:
            yield access
        finally:
            access.forget(self.model)
            await access.open(self.model, None)


@pytest.fixture
def bundled(ember: Ember) -> ModelRecord:
    """The bundled model as the module's ember registered it (its file in the ember's home)."""
    database = Database.from_config(ember.config)
    try:
        return SqlModelCatalog(database).get(BUNDLED_MODEL)
    finally:
        database.dispose()


class TestRayLauncher(HostLauncherContract):
    """The HostLauncher contract with ModelHost actors on the module's cluster, each asking
    for a sliver of a CPU (the cluster's two are mostly taken)."""

    @pytest.fixture
    def launcher(self, ember: Ember) -> RayLauncher:
        return RayLauncher(ModelsConfig(host_num_cpus=0.05, load_timeout_s=60))

    @pytest.fixture
    def model_record(self, bundled: ModelRecord) -> ModelRecord:
        return bundled
