"""Stop the whole cluster with jobs queued and running, start a new one on the same database:
every accepted job finishes."""

from __future__ import annotations

from pathlib import Path

import pytest

from ember.config import load_config
from ember.jobs.repository import SqlJobRepository
from ember.jobs.states import JobState
from tests.integration.test_jobs import Ember, job_settings, post
from tests.support.cluster import importable_tests, migrated, running_ember

pytestmark = pytest.mark.slow


def test_a_cluster_restart_loses_no_accepted_job(tmp_path: Path) -> None:
    importable_tests()
    config = load_config(None, job_settings(tmp_path, EMBER_JOBS_SLOTS_PER_WORKER="1"))
    with migrated(config) as database:
        jobs = SqlJobRepository(database)
        with running_ember(config, database) as first:
            ember = Ember(first.url, config, jobs, {})
            submitted = [
                post(
                    f"{ember.url}/jobs",
                    json={"kind": "steps", "input": {"steps": 20, "step_s": 0.1}},
                ).json()["id"]
                for _ in range(3)
            ]
            ember.until(submitted[0], states={JobState.RUNNING})
            assert [jobs.get(i).state for i in submitted[1:]] == [JobState.QUEUED] * 2
        assert jobs.get(submitted[0]).state is JobState.RUNNING

        with running_ember(config, database) as second:
            ember = Ember(second.url, config, jobs, {})
            finals = [ember.until(job_id, timeout_s=90) for job_id in submitted]
    assert [job.state for job in finals] == [JobState.SUCCEEDED] * 3
    assert finals[0].attempts == 2
    assert [job.attempts for job in finals[1:]] == [1, 1]
