"""Pools that follow their queue, on a real local Ray cluster with a real database: a kind's
job workers grow to ``jobs.workers_max`` while its jobs wait and shrink back to
``jobs.workers_min`` after the cooldown; workers the cluster cannot fit become a request that
reaches Ray's GCS; and Serve runs the ingress with ember's autoscaling config.

Every kind gets ``jobs.worker_num_cpus`` 0.5 on a 5-CPU cluster: 7 kinds at one worker, the
hub, the dispatcher and one replica leave 1.15 CPUs, room for two more workers but not four.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import ray

from ember.actors.names import DISPATCHER, NAMESPACE
from ember.config import EmberConfig
from ember.jobs.records import NewJob
from ember.jobs.repository import SqlJobRepository
from ember.jobs.states import TERMINAL, JobState
from tests.support.autoscaler import standing_request
from tests.support.cluster import ember_config, importable_tests, running_ember

pytestmark = pytest.mark.slow

WORKER = {"CPU": 0.5}
DEADLINE_S = 120.0
"""Generous: every new worker imports ember on a 2-core machine."""


@dataclass
class Ember:
    url: str
    config: EmberConfig
    jobs: SqlJobRepository
    dispatcher: Any

    def submit(self, kind: str, release: Path) -> str:
        job, _ = self.jobs.create(NewJob(kind, {"release": str(release)}, "autoscaling-test"))
        self.dispatcher.notify.remote()
        return job.id

    def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = ray.get(self.dispatcher.stats.remote(), timeout=30)
        return stats

    def pool(self, kind: str) -> dict[str, int]:
        return dict(self.stats()["pools"][kind])


def until(check: Callable[[], bool], what: str, timeout_s: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def ember(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ember]:
    importable_tests()
    home = tmp_path_factory.mktemp("autoscaling-home")
    config = ember_config(
        home,
        EMBER_RAY_NUM_CPUS="5",
        EMBER_RAY_DASHBOARD="false",
        EMBER_MODELS_BUNDLED="false",
        EMBER_JOBS_PLUGINS="tests.integration.autoscaling_plugin:kinds",
        EMBER_JOBS_POLL_INTERVAL_S="0.2",
        EMBER_JOBS_RENEW_INTERVAL_S="1",
        EMBER_JOBS_WORKERS_MIN="1",
        EMBER_JOBS_WORKERS_MAX="3",
        EMBER_JOBS_SLOTS_PER_WORKER="1",
        EMBER_JOBS_SCALE_COOLDOWN_S="1",
        EMBER_JOBS_WORKER_NUM_CPUS=str(WORKER["CPU"]),
        EMBER_SERVE_AUTOSCALING="true",
        EMBER_SERVE_MIN_REPLICAS="1",
        EMBER_SERVE_MAX_REPLICAS="2",
        EMBER_SERVE_TARGET_ONGOING_REQUESTS="5",
    )
    with running_ember(config) as running:
        dispatcher = ray.get_actor(DISPATCHER, namespace=NAMESPACE)
        yield Ember(running.url, config, SqlJobRepository(running.database), dispatcher)


def finished(ember: Ember, ids: list[str]) -> bool:
    return all(ember.jobs.get(job_id).state in TERMINAL for job_id in ids)


def test_a_pool_grows_to_max_with_its_queue_and_back_to_min_after_the_cooldown(
    ember: Ember, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    assert ember.pool("hold")["size"] == 1
    ids = [ember.submit("hold", release) for _ in range(6)]
    sizes: list[int] = []

    def all_slots_busy() -> bool:
        pool = ember.pool("hold")
        sizes.append(pool["size"])
        return pool["running"] == 3

    until(all_slots_busy, "three hold jobs run")
    for _ in range(10):
        sizes.append(ember.pool("hold")["size"])
        time.sleep(0.2)
    assert max(sizes) == 3, "the pool grew to workers_max and not beyond"
    assert sizes[-1] == 3
    states = [ember.jobs.get(job_id).state for job_id in ids]
    assert states.count(JobState.RUNNING) == 3 and states.count(JobState.QUEUED) == 3
    assert ember.pool("ingest")["size"] == 1, "a kind with an empty queue keeps its minimum"
    replaced = ember.stats()["replaced"]

    release.touch()
    until(lambda: finished(ember, ids), "every hold job finished")
    for job_id in ids:
        job = ember.jobs.get(job_id)
        assert job.state is JobState.SUCCEEDED and job.attempts == 1, job
    until(lambda: ember.pool("hold")["size"] == 1, "the pool is back at workers_min")
    stats = ember.stats()
    assert stats["pools"]["hold"] == {"size": 1, "target": 1, "running": 0}
    assert stats["retired"] >= 2 and stats["replaced"] == replaced


def test_workers_that_do_not_fit_are_requested_from_the_autoscaler(
    ember: Ember, tmp_path: Path
) -> None:
    release = tmp_path / "release"
    ids = [ember.submit(kind, release) for kind in ("hold", "hold2") for _ in range(3)]
    until(
        lambda: ember.pool("hold")["target"] == 3 and ember.pool("hold2")["target"] == 3,
        "both pools aim at workers_max",
    )
    pools = ember.stats()["pools"]
    wanted = sum(pool["target"] for pool in pools.values())
    assert pools["agent"]["target"] == 0, "the agent pool idles at agents.workers_min"
    assert pools["vm"]["target"] == 0, "the VM supervisors idle at vm.supervisors_min"
    assert wanted == len(pools) - 4 + 6
    until(lambda: standing_request() == [WORKER] * wanted, "the request reached the GCS")
    assert ember.stats()["resource_request"] == [WORKER] * wanted
    assert ember.pool("hold")["size"] == 3 and ember.pool("hold2")["size"] == 3

    release.touch()
    until(lambda: finished(ember, ids), "every held job finished")
    assert all(ember.jobs.get(job_id).state is JobState.SUCCEEDED for job_id in ids)
    until(
        lambda: ember.pool("hold")["size"] == 1 and ember.pool("hold2")["size"] == 1,
        "both pools are back at workers_min",
    )
    until(lambda: standing_request() == [], "the request was cleared")
    assert ember.stats()["resource_request"] == []


def test_serve_runs_the_ingress_with_the_autoscaling_config(ember: Ember) -> None:
    from ray.serve.context import _get_global_client

    details = _get_global_client().get_serve_details()
    api = details["applications"]["ember"]["deployments"]["api"]
    scaling = api["deployment_config"]["autoscaling_config"]
    assert (scaling["min_replicas"], scaling["max_replicas"]) == (1, 2)
    assert scaling["target_ongoing_requests"] == 5
    assert api["status"] == "HEALTHY" and api["target_num_replicas"] == 1
    assert httpx.get(f"{ember.url}/health", timeout=30).json()["status"] == "ok"
