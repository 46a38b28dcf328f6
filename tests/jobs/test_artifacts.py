"""A job's files: what :func:`collect` keeps, and that only the attempt holding the lease may
replace them (an attempt that lost its lease, or one that ran again after the job ended, once
emptied the files of the attempt that finished the job)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ember.agents.runs import SqlAgentRuns
from ember.agents.transcript import RunStatus, Transcript
from ember.errors import ArtifactNotFound
from ember.jobs.artifacts import Artifact, ArtifactLimits, SqlArtifactStore, collect
from ember.jobs.lease import holds_lease
from ember.jobs.records import JobRecord, NewJob
from ember.jobs.repository import SqlJobRepository
from ember.jobs.states import JobState
from ember.storage import Database
from tests.support.clock import FakeClock


@pytest.fixture
def jobs(database: Database, clock: FakeClock) -> SqlJobRepository:
    return SqlJobRepository(database, clock.wall)


@pytest.fixture
def store(database: Database) -> SqlArtifactStore:
    return SqlArtifactStore(database)


def claimed(jobs: SqlJobRepository, owner: str) -> JobRecord:
    [job] = jobs.claim("agent", owner, ttl_s=5)
    return job


def file(name: str, text: str) -> Artifact:
    data = text.encode()
    return Artifact(name, len(data), "-", data)


def test_only_the_attempt_holding_the_lease_keeps_files(
    jobs: SqlJobRepository, store: SqlArtifactStore, clock: FakeClock
) -> None:
    job, _ = jobs.create(NewJob("agent", {}, "alice", "req-1", None, max_attempts=3))
    first = claimed(jobs, "w1")
    clock.advance(6)
    jobs.reap()
    second = claimed(jobs, "w2")
    assert second.attempts == first.attempts + 1

    assert store.save(second, [file("a.txt", "from the second attempt")])
    assert not store.save(first, [])
    assert store.read(job.id, "a.txt").content == b"from the second attempt"

    jobs.finish(job.id, "w2", JobState.SUCCEEDED, result={})
    assert not store.save(second, []), "the job has ended: its files are final"
    assert [a.path for a in store.list(job.id)] == ["a.txt"]


def test_the_same_worker_running_a_job_again_does_not_replace_its_files(
    jobs: SqlJobRepository, store: SqlArtifactStore, clock: FakeClock
) -> None:
    job, _ = jobs.create(NewJob("agent", {}, "alice", "req-1", None, max_attempts=3))
    stale = claimed(jobs, "w1")
    clock.advance(6)
    jobs.reap()
    live = claimed(jobs, "w1")
    assert store.save(live, [file("a.txt", "kept")])
    assert not store.save(stale, [])
    assert store.read(job.id, "a.txt").content == b"kept"
    with pytest.raises(ArtifactNotFound):
        store.read(job.id, "b.txt")


def test_a_stale_attempt_does_not_replace_the_transcript(
    jobs: SqlJobRepository, database: Database, clock: FakeClock
) -> None:
    """The agent kind saves a transcript only under the lease (as files): a first attempt
    cancelled after the same worker was leased the job again once overwrote the finished
    run's ``completed`` transcript with ``cancelled``."""
    runs = SqlAgentRuns(database)
    job, _ = jobs.create(NewJob("agent", {}, "alice", "req-1", None, max_attempts=3))
    stale = claimed(jobs, "w1")
    clock.advance(6)
    jobs.reap()
    live = claimed(jobs, "w1")

    def transcript(status: RunStatus) -> Transcript:
        return Transcript(profile="scribe", model="m", status=status)

    assert runs.save(
        job.id, "scribe", transcript("completed"), only_if=lambda s: holds_lease(s, live)
    )
    assert not runs.save(
        job.id, "scribe", transcript("cancelled"), only_if=lambda s: holds_lease(s, stale)
    )
    stored = runs.get(job.id)
    assert stored is not None and stored["status"] == "completed"


def test_collect_keeps_regular_files_within_the_limits(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.txt").write_text("aa")
    (tmp_path / "sub" / "b.txt").write_text("bbbb")
    (tmp_path / "big.bin").write_bytes(b"x" * 11)
    (tmp_path / "c.txt").write_text("c")
    os.symlink("/etc/hostname", tmp_path / "link")
    collected = collect(tmp_path, ArtifactLimits(max_files=2, max_bytes=100, max_file_bytes=10))
    assert [a.path for a in collected.kept] == ["a.txt", "c.txt"]
    assert dict(collected.dropped) == {
        "big.bin": "too_large",
        "link": "not_a_file",
        "sub/b.txt": "too_many",
    }
