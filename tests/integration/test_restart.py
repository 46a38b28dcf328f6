"""Stop the whole cluster with jobs queued and running (and workers killed before), start a new
one on the same database: every accepted job finishes, each unfinished one after exactly one
more attempt, and nothing is stored twice."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import ray

from ember.actors.names import DISPATCHER, NAMESPACE
from ember.config import load_config
from ember.jobs.repository import SqlJobRepository
from ember.jobs.states import JobState
from tests.integration.test_jobs import Ember, job_settings, post
from tests.support.cluster import importable_tests, migrated, running_ember

pytestmark = pytest.mark.slow


def running_owner(jobs: SqlJobRepository, ids: list[str], timeout_s: float = 120) -> str | None:
    """The lease owner of the first of ``ids`` seen running (``None``: all ended first)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = [jobs.get(i) for i in ids]
        for job in found:
            if job.state is JobState.RUNNING and job.lease_owner:
                return job.lease_owner
        if all(job.finished for job in found):
            return None
        time.sleep(0.02)
    raise AssertionError("no job of the batch started running")


def test_concurrent_creating_jobs_killed_workers_and_a_restart_lose_nothing(
    tmp_path: Path,
) -> None:
    """20 ingest jobs into one new collection (``create: true``) and 20 generate jobs; two
    job workers killed mid-run; ember stopped and started again on the same home. Every
    accepted job succeeds, a job unfinished at the stop (queued, or running: its attempt is
    lost with the cluster) after exactly one more attempt, and every document is stored
    exactly once."""
    importable_tests()
    settings = {
        **job_settings(tmp_path),
        "EMBER_MODELS_BUNDLED": "true",
        "EMBER_JOBS_MAX_ATTEMPTS": "5",
    }
    config = load_config(None, settings)
    ingests = [
        {
            "collection": "shared",
            "create": True,
            "documents": [{"source": f"doc-{i}.txt", "text": f"Fact number {i} about tides."}],
        }
        for i in range(20)
    ]
    generate = {"prompt": "Say hi", "max_tokens": 4, "temperature": 0}
    with migrated(config) as database:
        jobs = SqlJobRepository(database)
        with running_ember(config, database) as first:
            ember = Ember(first.url, config, jobs, {})
            accepted = [
                post(f"{ember.url}/jobs", json={"kind": kind, "input": payload}).json()["id"]
                for kind, payload in [("ingest", i) for i in ingests]
                + [("generate", generate)] * 20
            ]
            dispatcher = ray.get_actor(DISPATCHER, namespace=NAMESPACE)
            killed = 0
            for kind in ("ingest", "generate"):
                owner = running_owner(jobs, [i for i in accepted if jobs.get(i).kind == kind])
                workers = ray.get(dispatcher.workers.remote(kind))
                if owner in workers:
                    ray.kill(workers[owner], no_restart=True)
                    killed += 1
            assert killed >= 1, "no worker was caught mid-run"
        at_stop = {job_id: jobs.get(job_id) for job_id in accepted}
        unfinished = [job for job in at_stop.values() if not job.finished]
        assert unfinished, "the cluster was stopped with work left"
        assert any(job.state is JobState.QUEUED for job in unfinished), "some job never started"
        with running_ember(config, database) as second:
            ember = Ember(second.url, config, jobs, {})
            finals = [ember.until(job_id, timeout_s=300) for job_id in accepted]
        again = {
            job.id: (at_stop[job.id].state.value, at_stop[job.id].attempts, job.attempts)
            for job in finals
            if job.attempts != at_stop[job.id].attempts + (0 if at_stop[job.id].finished else 1)
        }
        assert again == {}, "(state at the stop, attempts then, attempts at the end)"
        failed = [
            (j.kind, j.error_code, j.error_detail)
            for j in finals
            if j.state is not JobState.SUCCEEDED
        ]
        assert failed == []
        with database.engine.connect() as connection:
            rows = connection.exec_driver_sql(
                "SELECT d.source, count(*) FROM documents d JOIN collections c "
                "ON c.id = d.collection_id WHERE c.name = 'shared' GROUP BY d.source"
            ).all()
            chunks = connection.exec_driver_sql(
                "SELECT count(*) FROM chunks ch JOIN collections c ON c.id = ch.collection_id "
                "WHERE c.name = 'shared' AND NOT ch.retired"
            ).scalar()
            collections = connection.exec_driver_sql(
                "SELECT count(*) FROM collections WHERE name = 'shared'"
            ).scalar()
    assert collections == 1
    assert sorted(rows) == sorted((f"doc-{i}.txt", 1) for i in range(20))
    assert chunks == 20, "each document's chunk stored once"
