"""Durable jobs on a real local Ray cluster, over real HTTP: the dispatcher, worker and hub
actors, SSE and WebSocket streams, auth and limits, a worker killed mid-job."""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import ray
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from ember.actors.builder import start_worker
from ember.actors.event_hub import EventHubActor
from ember.actors.job_bus import RayJobBus
from ember.actors.names import DISPATCHER, HUB, NAMESPACE
from ember.actors.worker_pool import RayWorkerPool
from ember.auth import SqlTokenRepository, SqlWorkspaceRepository
from ember.config import EmberConfig, load_config
from ember.jobs.repository import SqlJobRepository
from ember.jobs.states import TERMINAL, JobState
from ember.testing.job_bus import JobBusContract
from ember.testing.worker_pool import WorkerPoolContract
from tests.support.cluster import ember_settings, importable_tests, migrated, running_ember

pytestmark = pytest.mark.slow

TIMEOUT_S = 120.0
"""Generous: the first search loads the embedding model in the replica, on a busy machine."""


def post(url: str, **options: Any) -> httpx.Response:
    return httpx.post(url, timeout=TIMEOUT_S, **options)


def get(url: str, **options: Any) -> httpx.Response:
    return httpx.get(url, timeout=TIMEOUT_S, **options)


def job_settings(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a test ember: a short lease, the test plug-in kinds."""
    return ember_settings(
        home,
        EMBER_RAY_NUM_CPUS="4",
        EMBER_RAY_DASHBOARD="false",
        EMBER_JOBS_PLUGINS="tests.jobs.plugin:kinds",
        EMBER_JOBS_LEASE_TTL_S="6",
        EMBER_JOBS_RENEW_INTERVAL_S="0.5",
        EMBER_JOBS_POLL_INTERVAL_S="0.2",
        EMBER_JOBS_HEARTBEAT_S="1",
        EMBER_JOBS_EVENT_RING_SIZE="256",
        EMBER_MODELS_BUNDLED="false",
        **extra,
    )


@dataclass
class Ember:
    url: str
    config: EmberConfig
    jobs: SqlJobRepository
    tokens: dict[str, str]

    def headers(self, who: str = "writer") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}

    def submit(self, kind: str, payload: dict[str, Any], **headers: str) -> dict[str, Any]:
        response = post(
            f"{self.url}/jobs",
            json={"kind": kind, "input": payload},
            headers={**self.headers(), **headers},
        )
        assert response.status_code in (200, 201), response.text
        return dict(response.json())

    def until(self, job_id: str, states=TERMINAL, timeout_s: float = 120.0):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            job = self.jobs.get(job_id)
            if job.state in states:
                return job
            time.sleep(0.05)
        raise AssertionError(f"job {job_id} is still {self.jobs.get(job_id).state}")


@pytest.fixture(scope="module")
def ember(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ember]:
    importable_tests()
    home = tmp_path_factory.mktemp("jobs-home")
    config = load_config(
        None,
        job_settings(home, EMBER_AUTH_RATE_LIMIT_PER_S="2", EMBER_AUTH_RATE_LIMIT_BURST="100"),
    )
    with migrated(config) as database:
        repo = SqlTokenRepository(database)
        SqlWorkspaceRepository(database).create("team-b")
        member = ["jobs:read", "jobs:write", "memory:read", "memory:write", "models:use"]
        tokens = {
            "writer": repo.create("writer", "writer", ["jobs:read", "jobs:write", "memory:write"])[
                1
            ],
            **{
                f"no-{scope}": repo.create(
                    f"no-{scope}", f"no-{scope}", [s for s in member if s != scope]
                )[1]
                for scope in ("memory:read", "memory:write", "models:use")
            },
            "team-b": repo.create("team-b", "bea", member, workspace="team-b")[1],
            "team-b-admin": repo.create("team-b-admin", "bob", ["admin"], workspace="team-b")[1],
            "operator": repo.create("operator", "operator", ["cluster:admin"])[1],
            "other": repo.create("other", "other", ["jobs:read", "jobs:write"])[1],
            "memory": repo.create("memory", "memory", ["memory:read"])[1],
            "flood": repo.create("flood", "flood", ["jobs:read"])[1],
        }
        with running_ember(config, database) as running:
            yield Ember(running.url, config, SqlJobRepository(database), tokens)


def sse(ember: Ember, job_id: str, last_id: int | None = None, limit: int | None = None):
    """(seq, type, data) of the job's SSE stream, optionally only the first ``limit``."""
    headers = ember.headers("writer")
    if last_id is not None:
        headers["Last-Event-ID"] = str(last_id)
    found: list[tuple[int, str, dict[str, Any]]] = []
    with httpx.stream(
        "GET", f"{ember.url}/jobs/{job_id}/events", headers=headers, timeout=30
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        seq, kind = 0, ""
        for line in response.iter_lines():
            if line.startswith("id: "):
                seq = int(line[4:])
            elif line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                found.append((seq, kind, json.loads(line[6:])))
                if limit is not None and len(found) >= limit:
                    break
    return found


def websocket_refusal(url: str) -> int:
    """How the server refused a WebSocket without credentials: the HTTP status of a denial
    response, or the close code."""
    try:
        with connect(url) as socket:
            socket.recv(timeout=5)
    except InvalidStatus as exc:
        return exc.response.status_code
    except ConnectionClosed as exc:
        return exc.rcvd.code if exc.rcvd is not None else -1
    raise AssertionError("the WebSocket was accepted without credentials")


def test_an_ingest_job_runs_on_a_worker_actor_and_streams(ember: Ember) -> None:
    created = post(
        f"{ember.url}/jobs",
        json={
            "kind": "ingest",
            "input": {
                "collection": "papers",
                "create": True,
                "documents": [
                    {"source": "a.txt", "text": "Volcanoes erupt molten lava."},
                    {"source": "b.txt", "text": "Tides follow the moon."},
                    {"source": "c.bin", "content_base64": "AAECAw=="},
                ],
            },
        },
        headers={**ember.headers(), "X-Request-ID": "ingest-req-1"},
    )
    assert created.status_code == 201 and created.headers["location"].startswith("/jobs/")
    job = created.json()
    assert job["state"] == "queued" and job["request_id"] == "ingest-req-1"
    events = sse(ember, job["id"])
    assert [seq for seq, _, _ in events] == list(range(1, len(events) + 1))
    assert events[0][1:] == ("state", {"state": "queued"})
    assert events[-1][1:] == ("state", {"state": "succeeded"})
    assert any(kind == "progress" for _, kind, _ in events)
    result = get(f"{ember.url}/jobs/{job['id']}/result", headers=ember.headers()).json()
    outcomes = {d["source"]: d["status"] for d in result["result"]["documents"]}
    assert outcomes == {"a.txt": "created", "b.txt": "created", "c.bin": "failed"}

    def dense(query: str) -> list[str]:
        response = post(
            f"{ember.url}/collections/papers/search",
            json={"query": query, "k": 1, "mode": "dense"},
            headers=ember.headers("memory"),
        )
        assert response.status_code == 200, response.text
        return [hit["source"] for hit in response.json()["hits"]]

    assert dense("molten rock") == ["a.txt"]
    more = ember.submit(
        "ingest",
        {
            "collection": "papers",
            "documents": [{"source": "d.txt", "text": "Glaciers carve deep valleys."}],
        },
    )
    assert ember.until(more["id"]).state is JobState.SUCCEEDED
    assert dense("ice grinding out a valley") == ["d.txt"]


def test_a_worker_killed_mid_job_is_replaced_and_the_job_finishes(ember: Ember) -> None:
    # 8 s of steps: a loaded machine must not finish the first attempt before the kill lands
    job = ember.submit("steps", {"steps": 80, "step_s": 0.1})
    # the lease marks the row running before the worker announces it: kill after the announcement
    started = sse(ember, job["id"], limit=3)
    assert [kind for _, kind, _ in started] == ["state", "state", "progress"], started
    running = ember.until(job["id"], states={JobState.RUNNING})
    dispatcher = ray.get_actor(DISPATCHER, namespace=NAMESPACE)
    workers = ray.get(dispatcher.workers.remote("steps"))
    ray.kill(workers[running.lease_owner], no_restart=True)
    final = ember.until(job["id"])
    assert final.state is JobState.SUCCEEDED
    assert final.attempts == 2 and final.lease_owner is None
    assert final.result == {"steps": 80, "attempt": 2}
    stats = ray.get(dispatcher.stats.remote())
    assert stats["replaced"] >= 1 and running.lease_owner not in stats["workers"]["steps"]
    states = [d.get("state") for _, kind, d in sse(ember, job["id"]) if kind == "state"]
    assert states[:3] == ["queued", "running", "queued"] and states[-1] == "succeeded"


def test_a_job_whose_worker_dies_on_every_attempt_fails_clearly(ember: Ember) -> None:
    job = ember.submit("steps", {"steps": 300, "step_s": 0.1})
    dispatcher = ray.get_actor(DISPATCHER, namespace=NAMESPACE)
    for attempt in range(1, ember.config.jobs.max_attempts + 1):
        deadline = time.monotonic() + 30
        while True:
            running = ember.jobs.get(job["id"])
            if running.state is JobState.RUNNING and running.attempts == attempt:
                break
            assert time.monotonic() < deadline, running
            time.sleep(0.05)
        workers = ray.get(dispatcher.workers.remote("steps"))
        ray.kill(workers[running.lease_owner], no_restart=True)
    final = ember.until(job["id"])
    assert final.state is JobState.FAILED and final.error_code == "worker_lost"
    assert final.attempts == ember.config.jobs.max_attempts
    events = sse(ember, job["id"])
    assert events[-2][1:] == ("error", {"code": "worker_lost", "detail": final.error_detail})
    assert events[-1][2] == {"state": "failed", "code": "worker_lost"}
    problem = get(f"{ember.url}/jobs/{job['id']}/result", headers=ember.headers())
    assert problem.status_code == 500 and problem.json()["code"] == "worker_lost"


def test_sse_and_websocket_resume_without_gaps_or_repeats(ember: Ember) -> None:
    job = ember.submit("steps", {"steps": 40, "step_s": 0.05})
    first = sse(ember, job["id"], limit=5)
    rest = sse(ember, job["id"], last_id=first[-1][0])
    seqs = [seq for seq, _, _ in first + rest]
    assert seqs == list(range(1, len(seqs) + 1)) and rest[-1][2] == {"state": "succeeded"}

    job = ember.submit("steps", {"steps": 40, "step_s": 0.05})
    url = ember.url.replace("http://", "ws://") + f"/jobs/{job['id']}/ws"
    token = ember.tokens["writer"]
    seen: list[int] = []
    with connect(f"{url}?after=0&access_token={token}") as socket:
        while len(seen) < 7:
            message = json.loads(socket.recv(timeout=10))
            if message["type"] != "heartbeat":
                seen.append(message["seq"])
    with connect(f"{url}?after={seen[-1]}", additional_headers=ember.headers()) as socket:
        while True:
            message = json.loads(socket.recv(timeout=10))
            if message["type"] == "heartbeat":
                continue
            seen.append(message["seq"])
            if message["type"] == "state" and message["data"]["state"] == "succeeded":
                break
    assert seen == list(range(1, len(seen) + 1))


def test_cancel_reaches_the_handler_on_its_worker(ember: Ember) -> None:
    job = ember.submit("steps", {"steps": 600, "step_s": 0.1})
    ember.until(job["id"], states={JobState.RUNNING})
    time.sleep(0.3)
    cancel = post(f"{ember.url}/jobs/{job['id']}/cancel", headers=ember.headers())
    assert cancel.status_code == 202 and cancel.json()["state"] == "cancelling"
    final = ember.until(job["id"], timeout_s=10)
    assert final.state is JobState.CANCELLED
    events = sse(ember, job["id"])
    assert ("log", {"message": "cancelled inside the handler"}) in [e[1:] for e in events]
    again = post(f"{ember.url}/jobs/{job['id']}/cancel", headers=ember.headers())
    assert again.status_code == 409 and again.json()["code"] == "job_finished"
    result = get(f"{ember.url}/jobs/{job['id']}/result", headers=ember.headers())
    assert result.json()["code"] == "job_cancelled"


def test_idempotency_keys_over_http(ember: Ember) -> None:
    body = {"kind": "steps", "input": {"steps": 1, "step_s": 0}}
    key = {"Idempotency-Key": f"key-{time.time_ns()}"}
    first = post(f"{ember.url}/jobs", json=body, headers={**ember.headers(), **key})
    again = post(f"{ember.url}/jobs", json=body, headers={**ember.headers(), **key})
    assert first.status_code == 201 and again.status_code == 200
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    other = {"kind": "steps", "input": {"steps": 2, "step_s": 0}}
    clash = post(f"{ember.url}/jobs", json=other, headers={**ember.headers(), **key})
    assert clash.status_code == 409
    assert clash.headers["content-type"] == "application/problem+json"
    assert clash.json()["code"] == "idempotency_conflict"
    theirs = post(f"{ember.url}/jobs", json=other, headers={**ember.headers("other"), **key})
    assert theirs.status_code == 201 and theirs.json()["id"] != first.json()["id"]
    hidden = get(f"{ember.url}/jobs/{first.json()['id']}", headers=ember.headers("other"))
    assert hidden.status_code == 404 and hidden.json()["code"] == "job_not_found"


def test_bad_input_401_403_and_429(ember: Ember) -> None:
    bad = post(
        f"{ember.url}/jobs",
        json={"kind": "steps", "input": {"steps": -1, "nope": 1}},
        headers=ember.headers(),
    )
    assert bad.status_code == 422 and bad.json()["code"] == "validation_failed"
    assert {e["path"] for e in bad.json()["errors"]} == {"input.steps", "input.nope"}
    unknown = post(f"{ember.url}/jobs", json={"kind": "nope"}, headers=ember.headers())
    assert unknown.status_code == 422 and unknown.json()["code"] == "unknown_job_kind"
    anonymous = get(f"{ember.url}/jobs")
    assert anonymous.status_code == 401 and anonymous.json()["code"] == "unauthorized"
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    wrong = post(f"{ember.url}/jobs", json={"kind": "steps"}, headers=ember.headers("memory"))
    assert wrong.status_code == 403 and wrong.json()["code"] == "forbidden"
    assert websocket_refusal(ember.url.replace("http://", "ws://") + "/jobs/x/ws") in {401, 1008}
    statuses = []
    with httpx.Client(headers=ember.headers("flood")) as client:
        for _ in range(130):
            response = client.get(f"{ember.url}/jobs", params={"limit": 1})
            statuses.append(response.status_code)
            if response.status_code == 429:
                assert int(response.headers["retry-after"]) >= 1
                assert response.json()["code"] == "rate_limited"
                break
    assert statuses[-1] == 429 and set(statuses[:-1]) == {200}


KIND_INPUTS = {
    "ingest": {"collection": "scoped", "create": True, "documents": [{"source": "a", "text": "x"}]},
    "reindex": {"collection": "scoped"},
    "chat": {"messages": [{"role": "user", "content": "hi"}]},
    "generate": {"prompt": "hi"},
    "ask": {"collection": "scoped", "question": "what?"},
}
NEEDS = {
    "ingest": {"memory:write"},
    "reindex": {"memory:write"},
    "chat": {"models:use"},
    "generate": {"models:use"},
    "ask": {"memory:read", "models:use"},
}


@pytest.mark.parametrize("kind", sorted(KIND_INPUTS))
@pytest.mark.parametrize("missing", ["memory:read", "memory:write", "models:use"])
def test_a_job_needs_the_scopes_of_what_it_does(ember: Ember, kind: str, missing: str) -> None:
    response = post(
        f"{ember.url}/jobs",
        json={"kind": kind, "input": KIND_INPUTS[kind]},
        headers=ember.headers(f"no-{missing}"),
    )
    if missing in NEEDS[kind]:
        assert response.status_code == 403, response.text
        assert response.json()["code"] == "forbidden"
        assert response.json()["required_scope"] == missing
    else:
        assert response.status_code == 201, response.text
        post(f"{ember.url}/jobs/{response.json()['id']}/cancel", headers=ember.headers("operator"))


def test_another_workspace_sees_none_of_a_workspaces_jobs(ember: Ember) -> None:
    job = ember.submit("steps", {"steps": 2, "step_s": 0})
    ember.until(job["id"])
    for who in ("team-b", "team-b-admin"):
        headers = ember.headers(who)
        for path in (
            f"/jobs/{job['id']}",
            f"/jobs/{job['id']}/result",
            f"/jobs/{job['id']}/events",
        ):
            hidden = get(f"{ember.url}{path}", headers=headers)
            assert hidden.status_code == 404, (who, path, hidden.text)
            assert hidden.json()["code"] == "job_not_found"
        cancel = post(f"{ember.url}/jobs/{job['id']}/cancel", headers=headers)
        assert cancel.status_code == 404 and cancel.json()["code"] == "job_not_found"
        listed = get(f"{ember.url}/jobs", params={"limit": 500}, headers=headers).json()
        assert job["id"] not in {j["id"] for j in listed["jobs"]}
    theirs = post(
        f"{ember.url}/jobs",
        json={"kind": "steps", "input": {"steps": 1, "step_s": 0}},
        headers=ember.headers("team-b"),
    ).json()
    admin_sees = get(
        f"{ember.url}/jobs", params={"limit": 500}, headers=ember.headers("team-b-admin")
    )
    assert {j["id"] for j in admin_sees.json()["jobs"]} >= {theirs["id"]}
    assert job["id"] not in {j["id"] for j in admin_sees.json()["jobs"]}
    everything = get(f"{ember.url}/jobs", params={"limit": 500}, headers=ember.headers("operator"))
    assert {job["id"], theirs["id"]} <= {j["id"] for j in everything.json()["jobs"]}
    assert (
        get(f"{ember.url}/jobs/{theirs['id']}", headers=ember.headers("operator")).status_code
        == 200
    )


def test_another_workspace_can_neither_see_nor_touch_a_workspaces_collection(
    ember: Ember,
) -> None:
    a, b = ember.headers("operator"), ember.headers("team-b")
    made = post(f"{ember.url}/collections", json={"name": "secrets"}, headers=a)
    assert made.status_code == 201, made.text
    docs = {"documents": [{"source": "plan.txt", "text": "The launch code is swordfish."}]}
    assert post(f"{ember.url}/collections/secrets/documents", json=docs, headers=a).is_success
    listed = get(f"{ember.url}/collections", headers=b).json()
    assert "secrets" not in {c["name"] for c in listed["items"]}
    attempts = {
        "read": get(f"{ember.url}/collections/secrets", headers=b),
        "search": post(
            f"{ember.url}/collections/secrets/search", json={"query": "launch code"}, headers=b
        ),
        "context": post(
            f"{ember.url}/collections/secrets/context",
            json={"query": "launch code", "budget_tokens": 200},
            headers=b,
        ),
        "ingest": post(f"{ember.url}/collections/secrets/documents", json=docs, headers=b),
        "delete": httpx.delete(f"{ember.url}/collections/secrets", headers=b, timeout=TIMEOUT_S),
    }
    for what, response in attempts.items():
        assert response.status_code == 404, (what, response.text)
        assert response.json()["code"] == "collection_not_found", what
    reindex = post(
        f"{ember.url}/jobs",
        json={"kind": "reindex", "input": {"collection": "secrets"}},
        headers=b,
    ).json()
    assert ember.until(reindex["id"]).error_code == "collection_not_found"
    ask = post(
        f"{ember.url}/jobs",
        json={"kind": "ask", "input": {"collection": "secrets", "question": "the code?"}},
        headers=b,
    ).json()
    assert ember.until(ask["id"]).error_code == "collection_not_found"
    own = post(f"{ember.url}/collections", json={"name": "secrets"}, headers=b)
    assert own.status_code == 201, "the name is free in another workspace"
    hits = post(
        f"{ember.url}/collections/secrets/search", json={"query": "launch code"}, headers=a
    ).json()["hits"]
    assert [h["source"] for h in hits] == ["plan.txt"], "A's collection is untouched"


def test_a_slow_reader_keeps_the_hub_bounded_and_misses_nothing(ember: Ember) -> None:
    job = ember.submit("burst", {"events": 20_000, "batch": 500})
    hub = ray.get_actor(HUB, namespace=NAMESPACE)
    seqs: list[int] = []
    peak = 0
    with httpx.stream(
        "GET", f"{ember.url}/jobs/{job['id']}/events", headers=ember.headers(), timeout=60
    ) as response:
        for line in response.iter_lines():
            if line.startswith("id: "):
                seqs.append(int(line[4:]))
                if len(seqs) % 2000 == 0:
                    stats = ray.get(hub.stats.remote(job["id"]))
                    peak = max(peak, stats.buffered, stats.pending)
                    time.sleep(0.3)
    assert seqs == list(range(1, 20_000 + 5))
    assert 0 < peak <= 256
    assert ember.jobs.get(job["id"]).state is JobState.SUCCEEDED


def test_metrics_come_from_the_actors(ember: Ember) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    job = ember.submit("steps", {"steps": 3, "step_s": 0.4})
    ember.until(job["id"])
    response = get(f"{ember.url}/metrics")
    assert response.status_code == 200
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }
    assert samples[("ember_jobs", (("kind", "steps"), ("state", "succeeded")))] >= 1
    count = ("ember_job_duration_seconds_count", (("kind", "steps"), ("outcome", "succeeded")))
    assert samples[count] >= 1
    assert samples[("ember_job_lease_renewals_total", ())] >= 2


class TestRayJobBus(JobBusContract):
    """The JobBus contract over the EventHub and JobDispatcher actors of the module's ember
    (its ``steps`` workers run the jobs)."""

    short_job = ("steps", {"steps": 3, "step_s": 0.05})
    long_job = ("steps", {"steps": 6000, "step_s": 0.05})
    ring_size = 256
    """``EMBER_JOBS_EVENT_RING_SIZE`` of :func:`job_settings`."""

    @pytest.fixture
    def jobs(self, ember: Ember) -> SqlJobRepository:
        return ember.jobs

    @pytest.fixture
    def bus(self, ember: Ember) -> RayJobBus:
        return RayJobBus()


@dataclass
class PoolSystem:
    pool: RayWorkerPool
    jobs: SqlJobRepository


POOL_RENEW_INTERVAL_S = 2.0


@pytest.fixture(scope="module")
def pool_system(ember: Ember, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PoolSystem]:
    """A RayWorkerPool of one ``steps`` JobWorker actor on the module's cluster, driven by the
    tests instead of a dispatcher: its workers lease from a database of its own, and publish to
    an EventHub actor of its own, so the ember's dispatcher never claims its jobs."""
    home = tmp_path_factory.mktemp("pool-home")
    settings = job_settings(home)
    settings["EMBER_JOBS_RENEW_INTERVAL_S"] = str(POOL_RENEW_INTERVAL_S)
    settings["EMBER_JOBS_LEASE_TTL_S"] = "30"
    config = load_config(None, settings)
    with migrated(config) as database:
        remote: Any = ray.remote(EventHubActor)
        hub = remote.options(num_cpus=0).remote(config)
        factory = functools.partial(start_worker, config, hub, "steps")
        jobs = SqlJobRepository(database)
        pool = RayWorkerPool("steps", 1, 2, factory, jobs)
        try:
            yield PoolSystem(pool, jobs)
        finally:
            for worker in pool.workers.values():
                ray.kill(worker, no_restart=True)
            ray.kill(hub, no_restart=True)


class TestRayWorkerPool(WorkerPoolContract):
    """The WorkerPool contract over a real JobWorker actor (see :func:`pool_system`)."""

    workers = 1
    slots = 2
    renew_interval_s = POOL_RENEW_INTERVAL_S
    short_job = ("steps", {"steps": 3, "step_s": 0.05})
    long_job = ("steps", {"steps": 6000, "step_s": 0.05})

    @pytest.fixture
    def pool(self, pool_system: PoolSystem) -> RayWorkerPool:
        return pool_system.pool

    @pytest.fixture
    def jobs(self, pool_system: PoolSystem) -> SqlJobRepository:
        return pool_system.jobs
