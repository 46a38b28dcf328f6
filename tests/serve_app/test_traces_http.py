"""One trace per request or job over real HTTP: the client's ``traceparent`` is adopted, the job
row keeps the trace, its worker continues it, the upstream provider receives it, and
``GET /jobs/{id}/trace`` answers the tree; errors and logs carry the trace id."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from ember.cli import app as cli
from tests.support.live_app import LiveApp, live_app
from tests.support.trace_docs import assert_trace_documented

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = f"00-{TRACE}-00f067aa0ba902b7-01"


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApp]:
    with live_app(tmp_path_factory.mktemp("traces")) as running:
        yield running


@pytest.fixture
def http(app: LiveApp) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=app.url, headers=app.auth, timeout=60) as client:
        yield client


def finished(http: httpx.Client, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        job = http.get(f"/jobs/{job_id}").json()
        if job["state"] in ("succeeded", "failed", "cancelled"):
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.05)


def trace_with(http: httpx.Client, job_id: str, name: str) -> dict[str, Any]:
    """The job's trace once a span named ``name`` is in it (spans arrive within a second)."""
    deadline = time.monotonic() + 30
    while True:
        response = http.get(f"/jobs/{job_id}/trace")
        if response.status_code == 200 and name in names(response.json()["roots"]):
            return response.json()
        assert time.monotonic() < deadline, response.text
        time.sleep(0.1)


def flat(spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [n for s in spans for n in [s, *flat(s["children"])]]


def names(spans: list[dict[str, Any]]) -> list[str]:
    return [n for s in spans for n in [s["name"], *names(s["children"])]]


def child(span: dict[str, Any], name: str) -> dict[str, Any]:
    found = [c for c in span["children"] if c["name"] == name]
    assert len(found) == 1, [c["name"] for c in span["children"]]
    return found[0]


def test_an_ask_job_is_one_trace_from_the_client_to_the_upstream_model(
    app: LiveApp, http: httpx.Client
) -> None:
    assert http.post("/collections", json={"name": "kb"}).status_code == 201
    documents = [{"source": "a.txt", "text": "Basalt is a volcanic rock."}]
    assert http.post("/collections/kb/documents", json={"documents": documents}).is_success
    created = http.post(
        "/jobs",
        json={"kind": "ask", "input": {"collection": "kb", "question": "What is basalt?"}},
        headers={"traceparent": PARENT},
    )
    assert created.status_code == 201, created.text
    job = created.json()
    assert job["trace_id"] == TRACE
    assert finished(http, job["id"])["state"] == "succeeded"
    traced = trace_with(http, job["id"], "job ask")
    assert (traced["job_id"], traced["trace_id"]) == (job["id"], TRACE)
    (submit,) = [root for root in traced["roots"] if root["name"] == "POST /jobs"]
    assert submit["parent_id"] == "00f067aa0ba902b7" and submit["kind"] == "server"
    assert submit["attributes"]["http.route"] == "/jobs"
    assert submit["attributes"]["http.response.status_code"] == 201
    attempt = child(submit, "job ask")
    request_ids = {s["attributes"].get("ember.request_id") for s in flat(traced["roots"])}
    assert request_ids == {job["request_id"]} and job["request_id"]
    assert attempt["attributes"]["ember.job.id"] == job["id"]
    assert attempt["attributes"]["ember.job.state"] == "succeeded"
    assert "retrieval kb" in names([attempt])
    call = child(attempt, "chat default")
    assert call["attributes"]["gen_ai.provider.name"] == "fake"
    model = child(call, "chat echo-model")
    (sent,) = [
        c
        for c in app.upstream.calls
        if c.path.endswith("/chat/completions") and TRACE in c.headers.get("traceparent", "")
    ]
    assert sent.headers["traceparent"].split("-")[1:3] == [TRACE, model["span_id"]]
    assert traced["spans"] == len(names(traced["roots"]))
    assert_trace_documented(traced["roots"], "ask")
    shown = ember(app, "jobs", "trace", job["id"], "-a", "gen_ai.provider.name")
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    assert lines[0] == f"trace {TRACE} ({traced['spans']} spans)"
    assert len(lines) == traced["spans"] + 1
    attempt_line = next(line for line in lines if line.lstrip().startswith("job ask"))
    call_line = next(line for line in lines if line.lstrip().startswith("chat default"))
    assert attempt_line.startswith("  job ask  [ember] ") and attempt_line.endswith(" ms")
    assert call_line.startswith("    chat default") and "gen_ai.provider.name=fake" in call_line


def ember(app: LiveApp, *args: str):  # type: ignore[no-untyped-def]
    env = {"EMBER_TOKEN": app.token, "COLUMNS": "200"}
    return CliRunner().invoke(cli, [*args, "--url", app.url], env=env)


def test_the_cli_prints_a_missing_trace_as_its_error(app: LiveApp) -> None:
    missing = ember(app, "jobs", "trace", "nope")
    assert missing.exit_code == 1
    assert "error[job_not_found]" in missing.output


def test_an_error_names_the_trace_and_an_untraced_job_has_no_trace(http: httpx.Client) -> None:
    missing = http.get("/jobs/nope", headers={"traceparent": PARENT})
    assert missing.status_code == 404
    assert missing.json()["trace_id"] == TRACE
    unknown = http.get("/jobs/nope/trace")
    assert unknown.json()["code"] == "job_not_found"
    assert len(unknown.json()["trace_id"]) == 32 and unknown.json()["trace_id"] != TRACE


def test_a_job_submitted_unsampled_has_no_trace(http: httpx.Client) -> None:
    unsampled = f"00-{TRACE}-00f067aa0ba902b7-00"
    created = http.post(
        "/jobs",
        json={"kind": "chat", "input": {"messages": [{"role": "user", "content": "hi"}]}},
        headers={"traceparent": unsampled},
    )
    assert created.status_code == 201, created.text
    assert created.json()["trace_id"] is None
    response = http.get(f"/jobs/{created.json()['id']}/trace")
    assert response.status_code == 404 and response.json()["code"] == "trace_not_found"
    assert "was not traced" in response.json()["detail"]


def test_the_job_kinds_and_their_input_schemas_are_listed(http: httpx.Client) -> None:
    answer = http.get("/jobs/kinds")
    assert answer.status_code == 200
    kinds = {kind["name"]: kind for kind in answer.json()["kinds"]}
    assert {"agent", "ask", "chat", "generate", "ingest", "reindex", "vm"} <= set(kinds)
    chat = kinds["chat"]
    assert chat["scopes"] == ["models:use"] and chat["description"]
    assert "messages" in chat["input_schema"]["required"]
    assert kinds["vm"]["input_schema"]["additionalProperties"] is False
    refused = http.post("/jobs", json={"kind": "chat", "input": {"messages": "hi"}})
    assert refused.status_code == 422
    paths = [error["path"] for error in refused.json()["errors"]]
    assert paths and all(path.startswith("input.messages") for path in paths)
