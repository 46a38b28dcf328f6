"""Stop the whole cluster with jobs queued and running, start a new one on the same database:
every accepted job finishes."""

from __future__ import annotations

from pathlib import Path

import pytest

from ember.cluster import Runtime
from ember.config import load_config
from ember.jobs.repository import SqlJobRepository
from ember.jobs.states import JobState
from ember.storage import Database, Migrator
from tests.integration.test_jobs import Ember, importable_tests, job_settings, post

pytestmark = pytest.mark.slow


def test_a_cluster_restart_loses_no_accepted_job(tmp_path: Path) -> None:
    importable_tests()
    config = load_config(None, job_settings(tmp_path, EMBER_JOBS_SLOTS_PER_WORKER="1"))
    database = Database.from_config(config)
    Migrator(database).upgrade()
    jobs = SqlJobRepository(database)
    first = Runtime(config)
    first.start()
    try:
        ember = Ember(first.deploy(), config, jobs, {})
        submitted = [
            post(
                f"{ember.url}/jobs", json={"kind": "steps", "input": {"steps": 20, "step_s": 0.1}}
            ).json()["id"]
            for _ in range(3)
        ]
        ember.until(submitted[0], states={JobState.RUNNING})
        assert [jobs.get(i).state for i in submitted[1:]] == [JobState.QUEUED] * 2
    finally:
        first.stop()
    assert jobs.get(submitted[0]).state is JobState.RUNNING

    second = Runtime(config)
    second.start()
    try:
        ember = Ember(second.deploy(), config, jobs, {})
        finals = [ember.until(job_id, timeout_s=90) for job_id in submitted]
    finally:
        second.stop()
        database.dispose()
    assert [job.state for job in finals] == [JobState.SUCCEEDED] * 3
    assert finals[0].attempts == 2
    assert [job.attempts for job in finals[1:]] == [1, 1]
