"""A database that another process holds locked must not freeze the API: while an exclusive
lock on the SQLite file is held for 10 s, ``/health`` keeps answering, a running job's event
stream keeps flowing, a submit that needs the database waits off the event loop (and is either
stored or refused, never half-stored), and once the lock is released every job finishes."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path

import httpx
import pytest

from ember.jobs.states import JobState
from tests.support.live_app import live_app

pytestmark = pytest.mark.slow

HOLD_S = 10.0


def test_an_exclusively_locked_sqlite_file_freezes_nothing_that_does_not_need_it(
    tmp_path: Path,
) -> None:
    settings = {
        "EMBER_JOBS_PLUGINS": "tests.jobs.plugin:kinds",
        "EMBER_JOBS_HEARTBEAT_S": "0.5",
    }
    with live_app(tmp_path, settings) as app, httpx.Client(headers=app.auth, timeout=60) as http:
        job = http.post(
            f"{app.url}/jobs", json={"kind": "steps", "input": {"steps": 400, "step_s": 0.05}}
        ).json()
        locked, released = threading.Event(), threading.Event()

        def hold() -> None:
            connection = sqlite3.connect(tmp_path / "ember.db", isolation_level=None)
            connection.execute("BEGIN EXCLUSIVE")
            locked.set()
            time.sleep(HOLD_S)
            connection.execute("COMMIT")
            connection.close()
            released.set()

        during: dict[str, int] = {"health": 0, "events": 0}
        submitted: list[httpx.Response] = []

        def submit_while_locked() -> None:
            locked.wait()
            body = {"kind": "steps", "input": {"steps": 1, "step_s": 0}}
            submitted.append(http.post(f"{app.url}/jobs", json=body))

        with http.stream("GET", f"{app.url}/jobs/{job['id']}/events") as stream:
            lines = stream.iter_lines()
            for line in lines:
                if line.startswith("event: progress"):
                    break
            threading.Thread(target=hold, daemon=True).start()
            locked.wait()
            writer = threading.Thread(target=submit_while_locked, daemon=True)
            writer.start()
            for line in lines:
                if released.is_set():
                    break
                if line.startswith(("event: ", ": heartbeat")):
                    during["events"] += 1
                if http.get(f"{app.url}/health").status_code == 200 and not released.is_set():
                    during["health"] += 1
        writer.join()
        assert during["health"] >= 3, "/health answered while the file was locked"
        assert during["events"] >= 3, "the stream kept flowing while the file was locked"
        (reply,) = submitted
        assert reply.status_code in (201, 503), reply.text
        if reply.status_code == 503:
            assert reply.json()["code"] == "database_unavailable"
        else:
            assert app.jobs.get(reply.json()["id"]).state in {
                JobState.QUEUED,
                JobState.RUNNING,
                JobState.SUCCEEDED,
            }
        deadline = time.monotonic() + 120
        while not app.jobs.get(job["id"]).finished and time.monotonic() < deadline:
            time.sleep(0.1)
        final = app.jobs.get(job["id"])
        assert final.state is JobState.SUCCEEDED, (final.error_code, final.error_detail)
        lines = http.get(f"{app.url}/jobs/{job['id']}/events", params={"after": 0}).text
        numbers = [int(line[4:]) for line in lines.splitlines() if line.startswith("id: ")]
        assert numbers == sorted(set(numbers)), "no event twice, in order"
        states = [
            json.loads(line[6:])["state"]
            for line in lines.splitlines()
            if line.startswith("data: ") and '"state"' in line
        ]
        assert states[0] == "queued" and states[-1] == "succeeded"
