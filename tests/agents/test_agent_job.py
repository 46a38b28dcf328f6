"""``agent`` jobs end to end over HTTP: the whole API on uvicorn, the job system, the real
bundled embedding model, a real bubblewrap sandbox, and the scripted chat fake as the model.

An agent writes a file, runs a command, searches memory and answers citing its sources; the
file is an artifact and the transcript is kept. Cancelling mid-command leaves the job
``cancelled`` with its partial transcript and no process behind; limits fail the job with
``agent_limit_exceeded``; a denied tool call is a tool error the model sees and an audit row.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.scripted_chat_fake import ScriptedCall, ScriptedChatServer, Turn
from tests.support.agent_app import scripted_app
from tests.support.live_app import LiveApp
from tests.support.trace_docs import assert_trace_documented

pytestmark = pytest.mark.slow

PROFILE = {
    "name": "helper",
    "model": "default",
    "tools": ["write_file", "read_file", "run_command", "search_memory"],
    "limits": {"max_steps": 6},
    "sandbox": {"wall_s": 30},
}


@pytest.fixture(scope="module")
def model() -> Iterator[ScriptedChatServer]:
    with ScriptedChatServer(model="agent-model") as server:
        yield server


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, model: ScriptedChatServer) -> Iterator[LiveApp]:
    with scripted_app(tmp_path_factory.mktemp("agents"), model) as app:
        yield app


@pytest.fixture(scope="module")
def client(live: LiveApp) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live.url, headers=live.auth, timeout=60) as http:
        assert http.post("/agents", json=PROFILE).status_code == 201
        assert http.post("/collections", json={"name": "notes"}).status_code == 201
        documents = [
            {"source": "volcano.md", "text": "Lava is molten rock that erupts from volcanoes."},
            {"source": "tides.md", "text": "The moon's gravity pulls the oceans into tides."},
        ]
        ingested = http.post("/collections/notes/documents", json={"documents": documents})
        assert ingested.status_code == 200
        yield http


def submit(client: httpx.Client, **job: Any) -> str:
    answer = client.post("/jobs", json={"kind": "agent", "input": {"agent": "helper", **job}})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def finished(client: httpx.Client, job_id: str) -> dict[str, Any]:
    with client.stream("GET", f"/jobs/{job_id}/events") as stream:
        for _ in stream.iter_lines():
            pass
    job: dict[str, Any] = client.get(f"/jobs/{job_id}").json()
    return job


def _trace(client: httpx.Client, job_id: str, last: str) -> list[dict[str, Any]]:
    """The job's span trees once the span named ``last`` arrived (within a second or so)."""
    deadline = time.monotonic() + 30
    while True:
        response = client.get(f"/jobs/{job_id}/trace")
        if response.status_code == 200 and last in response.text:
            roots: list[dict[str, Any]] = response.json()["roots"]
            return roots
        assert time.monotonic() < deadline, response.text
        time.sleep(0.1)


def tool_results(model: ScriptedChatServer) -> list[str]:
    return [
        message["content"]
        for message in model.requests[-1]["messages"]
        if message["role"] == "tool"
    ]


def test_an_agent_writes_runs_searches_and_cites(
    client: httpx.Client, model: ScriptedChatServer
) -> None:
    model.load(
        [
            Turn(
                calls=[ScriptedCall("write_file", {"path": "out/report.txt", "content": "lava\n"})]
            ),
            Turn(calls=[ScriptedCall("run_command", {"command": ["wc", "-c", "out/report.txt"]})]),
            Turn(calls=[ScriptedCall("search_memory", {"collection": "notes", "query": "lava"})]),
            Turn(text="Lava is molten rock [1]."),
        ]
    )
    job_id = submit(client, task="Write a report on lava and cite your source.")
    job = finished(client, job_id)
    assert job["state"] == "succeeded", job
    result = client.get(f"/jobs/{job_id}/result").json()["result"]
    assert result["status"] == "completed" and result["answer"] == "Lava is molten rock [1]."
    assert result["steps"] == 4

    written, counted, searched = tool_results(model)
    assert "out/report.txt" in written
    assert "5 out/report.txt" in counted
    assert "volcano.md" in searched and "molten rock" in searched

    listed = client.get(f"/jobs/{job_id}/artifacts").json()["artifacts"]
    assert [(a["path"], a["size"]) for a in listed] == [("out/report.txt", 5)]
    file = client.get(f"/jobs/{job_id}/artifacts/out/report.txt")
    assert file.content == b"lava\n" and file.headers["etag"] == f'"{listed[0]["sha256"]}"'
    assert client.get(f"/jobs/{job_id}/artifacts/nope.txt").json()["code"] == "artifact_not_found"

    assert_trace_documented(_trace(client, job_id, "job agent"), "agent")

    transcript = client.get(f"/jobs/{job_id}/transcript").json()
    assert transcript["status"] == "completed"
    assert [step["tool_calls"][0]["name"] for step in transcript["steps"][:3]] == [
        "write_file",
        "run_command",
        "search_memory",
    ]
    events = client.get(f"/jobs/{job_id}/events", params={"after": 0})
    assert "tool call" in events.text and "Lava is molten rock [1]." in events.text


def test_a_denied_call_is_a_tool_error_and_an_audit_row(
    client: httpx.Client, model: ScriptedChatServer, live: LiveApp
) -> None:
    model.load(
        [
            Turn(calls=[ScriptedCall("read_file", {"path": "../../etc/passwd"})]),
            Turn(text="I may not read that."),
        ]
    )
    job_id = submit(client, task="Read /etc/passwd.")
    assert finished(client, job_id)["state"] == "succeeded"
    (denied,) = tool_results(model)
    assert "policy_denied" in denied
    rows = [
        row
        for row in live.services.audit.list(limit=100)
        if row.action == "agent.tool_denied" and row.resource == f"job:{job_id}"
    ]
    assert len(rows) == 1 and rows[0].detail["tool"] == "read_file"


def test_a_job_may_narrow_its_profile_but_never_widen_it(
    client: httpx.Client, model: ScriptedChatServer, live: LiveApp
) -> None:
    job_id = submit(client, task="x", overrides={"tools": ["read_file", "fetch_url"]})
    job = finished(client, job_id)
    assert job["state"] == "failed" and job["error_code"] == "policy_denied"
    model.load([Turn(calls=[ScriptedCall("run_command", {"command": "true"})]), Turn(text="ok")])
    job_id = submit(client, task="x", overrides={"tools": ["read_file"]})
    assert finished(client, job_id)["state"] == "succeeded"
    (refused,) = tool_results(model)
    assert "unknown_tool" in refused
    rows = [
        r.detail
        for r in live.services.audit.list(limit=100)
        if r.resource == f"job:{job_id}" and r.action == "agent.tool_denied"
    ]
    assert [(r["code"], r["tool"]) for r in rows] == [("unknown_tool", "run_command")]


def test_a_step_limit_fails_the_job_and_keeps_the_transcript(
    client: httpx.Client, model: ScriptedChatServer
) -> None:
    model.load([Turn(calls=[ScriptedCall("read_file", {"path": "missing.txt"})])])
    model.repeat_last = True
    job_id = submit(client, task="loop", overrides={"limits": {"max_steps": 2}})
    job = finished(client, job_id)
    assert job["state"] == "failed" and job["error_code"] == "agent_limit_exceeded"
    transcript = client.get(f"/jobs/{job_id}/transcript").json()
    assert transcript["status"] == "limit_exceeded" and transcript["limit"] == "steps"


def test_cancel_mid_command_kills_it_and_keeps_the_partial_transcript(
    client: httpx.Client, model: ScriptedChatServer, tmp_path: Path
) -> None:
    marker = f"ember-cancel-{time.monotonic_ns()}"
    model.load(
        [
            Turn(calls=[ScriptedCall("write_file", {"path": "partial.txt", "content": "x"})]),
            Turn(calls=[ScriptedCall("run_command", {"command": f"sleep 60; echo {marker}"})]),
            Turn(text="never"),
        ]
    )
    job_id = submit(client, task="Work slowly.")
    deadline = time.monotonic() + 60
    while "sleep 60" not in _processes() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert marker in _processes(), "the command never started"
    assert client.post(f"/jobs/{job_id}/cancel").status_code == 202
    assert finished(client, job_id)["state"] == "cancelled"
    transcript = client.get(f"/jobs/{job_id}/transcript").json()
    assert transcript["status"] == "cancelled"
    asked = [
        call["function"]["name"]
        for message in transcript["messages"]
        if message["role"] == "assistant"
        for call in message.get("tool_calls") or []
    ]
    assert asked == ["write_file", "run_command"], "the call in flight is in the transcript"
    assert len(transcript["steps"]) == 2
    listed = client.get(f"/jobs/{job_id}/artifacts").json()["artifacts"]
    assert [a["path"] for a in listed] == ["partial.txt"]
    deadline = time.monotonic() + 10
    while marker in _processes() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert marker not in _processes(), "the sandboxed command outlived its cancelled job"


def _processes() -> str:
    lines = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                lines.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode())
            except OSError:
                continue
    return "\n".join(lines)
