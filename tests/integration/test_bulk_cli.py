"""`ember ingest PATH` on a running cluster (bulk by default when `RAY_ADDRESS` is set) and
`ray job submit -- ember ingest PATH`: the real CLI and the real Ray Data pipeline on a head
started with `ray start`, the first run killed half-way and the job finishing it."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from ember.config import load_config
from ember.storage import Database, Migrator, SqlChunkStore, SqlCollectionRepository
from tests.support.postgres import free_port

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
TIMEOUT_S = 600
KILLED_TOTAL = 240
"""Documents (the notes and the guide) of the run killed half-way: 30 batches of 8."""


def _corpus(folder: Path, documents: int = 30) -> Path:
    folder.mkdir(parents=True)
    lines = [
        json.dumps({"_id": f"n{i}", "title": f"Note {i}", "text": f"Observation {i}: " * 12})
        for i in range(documents)
    ]
    (folder / "notes.jsonl").write_text("\n".join(lines) + "\n")
    (folder / "guide.md").write_text("# Guide\n\nHow to feed a corpus to ember in bulk.\n")
    return folder


def _environment(home: Path, **extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("EMBER_", "RAY_ADDRESS"))
    }
    env.update(
        {
            "EMBER_HOME": str(home),
            "EMBER_EMBEDDINGS_WORKER_NUM_CPUS": "0.5",
            "EMBER_RAY_NUM_CPUS": "2",
            "HF_HUB_OFFLINE": "1",
            "RAY_AUTH_MODE": "disabled",
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "COLUMNS": "200",
            **extra,
        }
    )
    return env


def _live(home: Path, collection: str) -> tuple[int, int]:
    """(live documents, live chunks) of ``collection`` in ``home``'s database; (0, 0) while
    the database is still being migrated or the collection does not exist yet."""
    config = load_config(None, {"EMBER_HOME": str(home)})
    database = Database.from_config(config)
    try:
        migrator = Migrator(database)
        if migrator.current() != migrator.head():
            return 0, 0
        names = {c.name: c.id for c in SqlCollectionRepository(database).list(limit=100)}
        if collection not in names:
            return 0, 0
        store = SqlChunkStore(database)
        return len(store.live_hashes(names[collection])), store.live_chunk_count(names[collection])
    finally:
        database.dispose()


def _saved_vectors(home: Path, collection: str) -> int:
    """Entries in the collection's live FAISS index as saved on disk."""
    from ember.storage.indexes import SqlIndexRegistry
    from ember.vectors.faiss import FaissIndex

    database = Database.from_config(load_config(None, {"EMBER_HOME": str(home)}))
    try:
        record = SqlCollectionRepository(database).get(collection)
        live = SqlIndexRegistry(database).live(record.id)
        assert live is not None
        return FaissIndex(dim=live.dim, path=home / "indexes" / live.id).count()
    finally:
        database.dispose()


def _live_documents(home: Path, collection: str) -> int:
    return _live(home, collection)[0]


def _live_chunks(home: Path, collection: str) -> int:
    return _live(home, collection)[1]


def _wait_for_dashboard(url: str, head: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        assert head.poll() is None, "ray start exited"
        try:
            if httpx.get(f"{url}/api/version", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise AssertionError(f"no Ray dashboard at {url}")


def _kill_half_way(command: list[str], env: dict[str, str], home: Path, name: str) -> int:
    """Run ``command`` until its first documents are written, then SIGKILL it and everything
    it started; how many documents it had written when it died (0: it wrote none in time)."""
    run = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    written = 0
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline and run.poll() is None:
            written = _live_documents(home, name) if (home / "ember.db").exists() else 0
            if written:
                break
            time.sleep(0.3)
    finally:
        os.killpg(run.pid, signal.SIGKILL)
        run.wait(timeout=60)
    return _live_documents(home, name) if written else 0


def test_a_bulk_ingest_killed_half_way_is_finished_by_ray_job_submit(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path / "corpus", documents=KILLED_TOTAL - 1)
    home = tmp_path / "home"
    env = _environment(home, EMBER_MEMORY_INGEST_BATCH_SIZE="8")
    dashboard, gcs = free_port(), free_port()
    head = subprocess.Popen(
        [
            str(BIN / "ray"),
            "start",
            "--head",
            "--block",
            f"--port={gcs}",
            "--num-cpus=2",
            "--include-dashboard=true",
            "--dashboard-host=127.0.0.1",
            f"--dashboard-port={dashboard}",
            "--disable-usage-stats",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    url = f"http://127.0.0.1:{dashboard}"
    try:
        _wait_for_dashboard(url, head)
        joined = {**env, "RAY_ADDRESS": f"127.0.0.1:{gcs}"}
        written = _kill_half_way(
            [str(BIN / "ember"), "ingest", str(corpus)], joined, home, "corpus"
        )
        assert 0 < written < KILLED_TOTAL, "the run was not caught half-way"
        runtime_env = {"env_vars": {k: v for k, v in env.items() if k.startswith("EMBER_")}}
        command = [
            str(BIN / "ray"),
            "job",
            "submit",
            f"--address={url}",
            f"--runtime-env-json={json.dumps(runtime_env)}",
            "--",
            "ember",
            "ingest",
            str(corpus),
        ]
        deadline = time.monotonic() + 300  # the head's job agent is slow to come up under load
        while True:
            submitted = subprocess.run(
                command, env=env, capture_output=True, text=True, timeout=TIMEOUT_S
            )
            starting = "No available agent" in submitted.stderr
            if not starting or time.monotonic() > deadline:
                break
            time.sleep(2)
        assert submitted.returncode == 0, submitted.stdout + submitted.stderr
        created = int(re.search(r"(\d+) created", submitted.stdout).group(1))  # type: ignore[union-attr]
        unchanged = int(re.search(r"(\d+) unchanged", submitted.stdout).group(1))  # type: ignore[union-attr]
        assert (created, unchanged) == (KILLED_TOTAL - written, written)
        assert "succeeded" in submitted.stdout.lower()
    finally:
        head.terminate()
        head.wait(timeout=60)
    assert _live_documents(home, "corpus") == KILLED_TOTAL
    assert _live_chunks(home, "corpus") == KILLED_TOTAL
    assert _saved_vectors(home, "corpus") == KILLED_TOTAL


def test_a_healthy_bulk_ingest_prints_only_its_own_lines(tmp_path: Path) -> None:
    """Issue 15, defect 18: no Ray log lines, warnings or model-loading bars on a run that
    works (on a local cluster started for the run)."""
    corpus = _corpus(tmp_path / "corpus", documents=20)
    env = _environment(tmp_path / "home")
    run = subprocess.run(
        [str(BIN / "ember"), "ingest", str(corpus), "--bulk"],
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "21 created" in run.stdout
    noise = [
        line
        for line in (run.stdout + run.stderr).splitlines()
        if line.strip() and not line.startswith(("ingesting", "21 created"))
    ]
    assert noise == []
