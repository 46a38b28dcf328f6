"""Kill each of the cluster's singletons mid-load — the EventHub, the JobDispatcher, the
ModelRegistry — the way a crash would (``ray.kill(handle, no_restart=False)``): Ray restarts
it and it rebuilds its state from the database. Every accepted job finishes, every stream
that was following a job ends complete (nothing stored is missed, the final attempt's events
are all there), and requests made meanwhile are answered, or refused with a 503 that carries
``Retry-After`` — never a 500."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import ray

from ember.actors.names import DISPATCHER, HUB, MODEL_REGISTRY, NAMESPACE
from ember.auth import SqlTokenRepository
from ember.config import EmberConfig, load_config
from ember.jobs.repository import SqlJobRepository
from ember.jobs.states import TERMINAL, JobState
from tests.integration.test_jobs import job_settings
from tests.support.cluster import importable_tests, migrated, running_ember

pytestmark = pytest.mark.slow

STEPS = 15
"""Progress events of each job under load (one every ``STEP_S``)."""
STEP_S = 0.2
REFUSED = {"service_unavailable", "no_provider_available"}
"""What a request may be refused with while a singleton is down (the router answers a model
call whose only candidate is unavailable with ``no_provider_available``)."""


@dataclass
class Ember:
    url: str
    config: EmberConfig
    jobs: SqlJobRepository
    headers: dict[str, str]


@pytest.fixture(scope="module")
def ember(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ember]:
    importable_tests()
    home = tmp_path_factory.mktemp("singletons-home")
    instances = {"local": {"kind": "llamacpp"}, "embeddings": {"kind": "sentence-transformers"}}
    settings = job_settings(
        home,
        EMBER_JOBS_MAX_ATTEMPTS="5",
        EMBER_AUTH_RATE_LIMIT_PER_S="0",
        EMBER_PROVIDERS_INSTANCES=json.dumps(instances),
        EMBER_ROUTER_ALIASES=json.dumps({"default": ["local/gemma3-270m"]}),
        EMBER_ROUTER_RETRY_ATTEMPTS="1",
    )
    settings["EMBER_MODELS_BUNDLED"] = "true"
    config = load_config(None, settings)
    with migrated(config) as database:
        _, token = SqlTokenRepository(database).create("tester", "tester", ["admin"])
        with running_ember(config, database) as running:
            yield Ember(
                running.url,
                config,
                SqlJobRepository(database),
                {"Authorization": f"Bearer {token}"},
            )


@dataclass(eq=False)
class Follower(threading.Thread):
    """Follows one job's SSE stream to its final state, resuming with ``Last-Event-ID``
    whenever the stream breaks off."""

    ember: Ember
    job_id: str
    events: list[tuple[int, str, dict[str, Any]]] = field(default_factory=list)
    resumed: int = 0
    failure: BaseException | None = None

    def __post_init__(self) -> None:
        super().__init__(daemon=True)

    def run(self) -> None:
        try:
            self._follow()
        except BaseException as exc:
            self.failure = exc

    def _follow(self) -> None:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            last = self.events[-1][0] if self.events else 0
            headers = {**self.ember.headers, "Last-Event-ID": str(last)}
            url = f"{self.ember.url}/jobs/{self.job_id}/events"
            try:
                with httpx.stream("GET", url, headers=headers, timeout=60) as response:
                    assert response.status_code in (200, 503), response.status_code
                    if response.status_code == 200:
                        for seq, kind, data in _sse_events(response.iter_lines()):
                            if kind == "error":
                                assert data["code"] in REFUSED, data
                                break
                            self.events.append((seq, kind, data))
                            if kind == "state" and data.get("state") in _FINAL:
                                return
            except httpx.TransportError:
                pass
            self.resumed += 1
            time.sleep(0.2)
        raise AssertionError(f"the stream of {self.job_id} did not end")


_FINAL = {state.value for state in TERMINAL}


def _sse_events(lines: Iterator[str]) -> Iterator[tuple[int, str, dict[str, Any]]]:
    seq, kind = 0, "message"
    for line in lines:
        if line.startswith("id: "):
            seq = int(line[4:])
        elif line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: "):
            yield seq, kind, json.loads(line[6:])
            seq, kind = 0, "message"


def _submit(ember: Ember, steps: int = STEPS) -> str:
    response = httpx.post(
        f"{ember.url}/jobs",
        json={"kind": "steps", "input": {"steps": steps, "step_s": STEP_S}},
        headers=ember.headers,
        timeout=60,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _until(ember: Ember, job_id: str, states: set[JobState], timeout_s: float = 180) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = ember.jobs.get(job_id)
        if job.state in states:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} is still {ember.jobs.get(job_id).state}")


def _check_refusal(response: httpx.Response) -> None:
    """An answer, or a refusal a client can retry; never a 500."""
    assert response.status_code < 500 or response.status_code == 503, (
        response.status_code,
        response.text,
    )
    if response.status_code == 503:
        body = response.json()
        error = body["error"] if isinstance(body.get("error"), dict) else body  # OpenAI's shape
        assert error["code"] in REFUSED, body
        if error["code"] == "service_unavailable":
            assert int(response.headers["retry-after"]) >= 1


def _gap_requests(
    ember: Ember, requests: list[Callable[[httpx.Client], httpx.Response]]
) -> tuple[int, int]:
    """Each request once, right after a kill, in a loop for a few rounds; returns how many
    were answered and how many refused (503)."""
    answered = refused = 0
    with httpx.Client(headers=ember.headers, timeout=60) as client:
        for _ in range(3):
            for request in requests:
                response = request(client)
                _check_refusal(response)
                if response.status_code == 503:
                    refused += 1
                else:
                    answered += 1
    return answered, refused


def _key(event: tuple[int, str, dict[str, Any]]) -> tuple[int, str, str]:
    seq, kind, data = event
    return seq, kind, json.dumps(data, sort_keys=True)


def _check_complete(ember: Ember, follower: Follower) -> None:
    """The follower saw every stored event after its start (in order, none twice), and the
    job's final attempt whole: ``running``, every step, its result, ``succeeded``."""
    assert follower.failure is None, follower.failure
    seqs = [seq for seq, _, _ in follower.events]
    assert seqs == sorted(set(seqs)), "in order, none twice"
    with httpx.stream(
        "GET", f"{ember.url}/jobs/{follower.job_id}/events", headers=ember.headers, timeout=60
    ) as response:
        stored = list(_sse_events(response.iter_lines()))
    seen = {_key(event) for event in follower.events}
    missed = [event for event in stored if _key(event) not in seen]
    assert not missed, f"stored but never delivered to the follower: {missed}"
    job = ember.jobs.get(follower.job_id)
    assert job.state is JobState.SUCCEEDED and job.result == {
        "steps": STEPS,
        "attempt": job.attempts,
    }
    for events in (follower.events, stored):
        starts = [
            i
            for i, (_, kind, data) in enumerate(events)
            if kind == "state" and data.get("state") == "running"
        ]
        final = events[starts[-1] :]
        assert final[0][2]["attempt"] == job.attempts
        done = [data["done"] for _, kind, data in final if kind == "progress"]
        assert done == list(range(1, STEPS + 1)), done
        assert [kind for _, kind, _ in final[-2:]] == ["result", "state"]
        assert final[-1][2] == {"state": "succeeded"}


def _kill_mid_load(
    ember: Ember, name: str, requests: list[Callable[[httpx.Client], httpx.Response]]
) -> tuple[list[str], tuple[int, int]]:
    """Start a few jobs and their followers, kill ``name`` once they run, make ``requests``
    meanwhile, then check every job and stream. Returns the jobs and the gap's counts."""
    submitted = [_submit(ember) for _ in range(3)]
    followers = [Follower(ember, job_id) for job_id in submitted]
    for follower in followers:
        follower.start()
    for job_id in submitted[:2]:
        _until(ember, job_id, {JobState.RUNNING})
    time.sleep(1.0)  # a few steps in: some events stored, some buffered in the hub
    ray.kill(ray.get_actor(name, namespace=NAMESPACE), no_restart=False)
    counts = _gap_requests(ember, requests)
    during = _submit(ember)
    followers.append(Follower(ember, during))
    followers[-1].start()
    for follower in followers:
        follower.join(timeout=300)
        assert not follower.is_alive(), f"the stream of {follower.job_id} never ended"
    for follower in followers:
        _check_complete(ember, follower)
    return [*submitted, during], counts


def _job_requests(ember: Ember, victim: str) -> list[Callable[[httpx.Client], httpx.Response]]:
    return [
        lambda c: c.post(
            f"{ember.url}/jobs", json={"kind": "steps", "input": {"steps": 2, "step_s": 0.05}}
        ),
        lambda c: c.get(f"{ember.url}/jobs/{victim}"),
        lambda c: c.post(f"{ember.url}/jobs/{victim}/cancel"),
        lambda c: c.get(f"{ember.url}/metrics"),
    ]


@pytest.mark.parametrize("name", [HUB, DISPATCHER])
def test_a_job_system_singleton_killed_mid_load_heals(ember: Ember, name: str) -> None:
    victim = _submit(ember, steps=3000)
    _until(ember, victim, {JobState.RUNNING})
    before = ray.get_actor(name, namespace=NAMESPACE)._actor_id
    accepted, (answered, refused) = _kill_mid_load(ember, name, _job_requests(ember, victim))
    assert ray.get_actor(name, namespace=NAMESPACE)._actor_id == before, "restarted, not new"
    assert answered + refused == 12
    print(f"{name}: {answered} answered, {refused} refused with 503 during the gap")
    cancelled = _until(ember, victim, TERMINAL)
    assert cancelled.state is JobState.CANCELLED
    created = [
        job for job in ember.jobs.page(principal=None, limit=100)[0] if job.input.get("steps") == 2
    ]
    for job in created:
        assert _until(ember, job.id, TERMINAL).state is JobState.SUCCEEDED
    assert all(ember.jobs.get(job_id).state is JobState.SUCCEEDED for job_id in accepted)
    ready = httpx.get(f"{ember.url}/ready", headers=ember.headers, timeout=60)
    assert ready.status_code == 200, ready.text


def test_the_model_registry_killed_mid_load_heals(ember: Ember) -> None:
    chat = {
        "model": "default",
        "messages": [{"role": "user", "content": "Say hi."}],
        "max_tokens": 4,
    }
    first = httpx.post(
        f"{ember.url}/v1/chat/completions", json=chat, headers=ember.headers, timeout=120
    )
    assert first.status_code == 200, first.text
    requests: list[Callable[[httpx.Client], httpx.Response]] = [
        lambda c: c.post(f"{ember.url}/v1/chat/completions", json=chat),
        lambda c: c.get(f"{ember.url}/v1/models"),
        lambda c: c.get(f"{ember.url}/api/ps"),
        lambda c: c.post(
            f"{ember.url}/jobs", json={"kind": "steps", "input": {"steps": 2, "step_s": 0.05}}
        ),
    ]
    accepted, (answered, refused) = _kill_mid_load(ember, MODEL_REGISTRY, requests)
    assert all(ember.jobs.get(job_id).state is JobState.SUCCEEDED for job_id in accepted)
    print(f"registry: {answered} answered, {refused} refused with 503 during the gap")
    deadline = time.monotonic() + 180
    while True:
        ready = httpx.get(f"{ember.url}/ready", headers=ember.headers, timeout=60)
        if ready.status_code == 200:
            break
        assert time.monotonic() < deadline, ready.text
        time.sleep(0.5)
    again = httpx.post(
        f"{ember.url}/v1/chat/completions", json=chat, headers=ember.headers, timeout=120
    )
    assert again.status_code == 200, again.text
    loaded = httpx.get(f"{ember.url}/api/ps", headers=ember.headers, timeout=60).json()
    assert [m["model"] for m in loaded["models"]] == ["gemma3-270m"], "the warm model is back"
