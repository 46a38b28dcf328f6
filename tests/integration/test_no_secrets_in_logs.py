"""No secret reaches a log line or the audit log, over a whole session.

The whole API (:func:`~tests.support.live_app.live_app`) runs a session that handles every
kind of secret: API tokens are created over HTTP (and one revoked), provider API keys are set
(one through ``api_key_env``, one in the config, one wrong), and the new token makes
requests: chat through the keyed upstream, a call the upstream refuses, an agent job run to
completion, a WebSocket with the token in its URL, and refused calls with a revoked and an
unknown token. Every log record of the process, formatted by ember's
:class:`~ember.observability.JsonFormatter`, every audit row and the agent job's events are
scanned for the raw token and key values (a token's hash may appear; its secret may not). The
capture is checked to hold the session, so the scan cannot pass on an empty log.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from ember.observability import JsonFormatter
from tests.fakes.openai_fake import FakeOpenAIServer
from tests.fakes.scripted_chat_fake import ScriptedCall, ScriptedChatServer, Turn
from tests.support.live_app import LiveApp, live_app

pytestmark = pytest.mark.slow

KEY_ENV = "EMBER_TEST_UPSTREAM_KEY"
PRINCIPAL = "log-auditor"
SCOPES = ["jobs:read", "jobs:write", "memory:read", "models:use", "agents:read", "agents:run"]
PROFILE = {
    "name": "scribe",
    "model": "default",
    "tools": ["write_file", "search_memory"],
    "limits": {"max_steps": 4},
}
SCRIPT = [
    Turn(calls=(ScriptedCall("write_file", {"path": "notes.txt", "content": "lava\n"}),)),
    Turn(calls=(ScriptedCall("search_memory", {"collection": "notes", "query": "lava"}),)),
    Turn(text="Lava is molten rock [1]."),
]


class Captured(logging.Handler):
    """Every record that reaches it, formatted as ember formats it when it is emitted (inside
    its request's context and span)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.json = JsonFormatter("ember")
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.json.format(record))


@contextmanager
def captured_logs() -> Iterator[Captured]:
    """Every record of this process at INFO and up, ember's at DEBUG and up, whatever handlers
    an earlier test configured; the loggers are restored on exit."""
    handler = Captured()
    root, ember = logging.getLogger(), logging.getLogger("ember")
    saved = root.level, ember.level, ember.propagate
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    ember.setLevel(logging.DEBUG)
    ember.propagate = True
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(saved[0])
        ember.setLevel(saved[1])
        ember.propagate = saved[2]


@dataclass
class Session:
    """What a session left behind, and the secrets it handled (by what they are)."""

    secrets: dict[str, str]
    lines: list[str]
    audit: list[dict[str, Any]]
    events: str
    job_id: str
    refused: tuple[int, int, int]
    """The statuses of the call the upstream refused, and of the revoked and unknown tokens."""

    def entries(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines]


def _run(
    live: LiveApp, model: ScriptedChatServer, unknown: str
) -> tuple[dict[str, str], str, tuple[int, int, int]]:
    """The session's requests; the tokens it made, the agent job's id and the statuses of
    the refused calls."""
    with httpx.Client(base_url=live.url, headers=live.auth, timeout=60) as admin:
        assert admin.post("/agents", json=PROFILE).status_code == 201
        assert admin.post("/collections", json={"name": "notes"}).status_code == 201
        document = {"source": "volcano.md", "text": "Lava is molten rock from volcanoes."}
        ingested = admin.post("/collections/notes/documents", json={"documents": [document]})
        assert ingested.status_code == 200, ingested.text
        made = admin.post("/tokens", json={"name": "ci", "principal": PRINCIPAL, "scopes": SCOPES})
        assert made.status_code == 201, made.text
        spare = admin.post("/tokens", json={"name": "spare", "scopes": ["models:use"]}).json()
        assert admin.delete(f"/tokens/{spare['id']}").status_code == 200
    tokens = {"created token": made.json()["token"], "revoked token": spare["token"]}

    bearer = {"Authorization": f"Bearer {tokens['created token']}"}
    with httpx.Client(base_url=live.url, headers=bearer, timeout=60) as client:
        chat = {"model": "fake/echo-model", "messages": [{"role": "user", "content": "hi"}]}
        answered = client.post("/v1/chat/completions", json=chat)
        assert answered.status_code == 200, answered.text
        wrong = client.post("/v1/chat/completions", json={**chat, "model": "wrong/echo-model"})

        model.load(SCRIPT)
        task = {"agent": "scribe", "task": "Write a note on lava and cite your source."}
        submitted = client.post("/jobs", json={"kind": "agent", "input": task})
        assert submitted.status_code == 201, submitted.text
        job_id = str(submitted.json()["id"])
        with client.stream("GET", f"/jobs/{job_id}/events") as stream:
            for _ in stream.iter_lines():
                pass
        job = client.get(f"/jobs/{job_id}").json()
        assert job["state"] == "succeeded", job

        url = live.url.replace("http://", "ws://") + f"/jobs/{job_id}/ws"
        with connect(f"{url}?after=0&access_token={tokens['created token']}") as socket:
            while True:
                message = json.loads(socket.recv(timeout=10))
                if message["type"] == "state" and message["data"]["state"] == "succeeded":
                    break

    revoked = httpx.get(
        f"{live.url}/jobs", headers={"Authorization": f"Bearer {tokens['revoked token']}"}
    )
    stranger = httpx.get(f"{live.url}/jobs", headers={"Authorization": f"Bearer {unknown}"})
    return tokens, job_id, (wrong.status_code, revoked.status_code, stranger.status_code)


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Session:
    key, inline, wrong = (f"sk-test-{secrets.token_hex(16)}" for _ in range(3))
    unknown = f"ember_{secrets.token_urlsafe(32)}"
    home: Path = tmp_path_factory.mktemp("secrets")
    with (
        pytest.MonkeyPatch.context() as env,
        FakeOpenAIServer(dim=32, models=("echo-model",), api_key=key) as upstream,
        ScriptedChatServer(model="agent-model") as model,
        captured_logs() as handler,
    ):
        env.setenv(KEY_ENV, key)
        providers = {
            "fake": {"kind": "openai", "base_url": upstream.base_url, "api_key_env": KEY_ENV},
            "wrong": {"kind": "openai", "base_url": upstream.base_url, "api_key": wrong},
            "scripted": {"kind": "openai", "base_url": model.base_url, "api_key": inline},
            "embeddings": {"kind": "sentence-transformers"},
        }
        settings = {
            "EMBER_PROVIDERS_INSTANCES": json.dumps(providers),
            "EMBER_ROUTER_DEFAULT_PROVIDER": "scripted",
            "EMBER_ROUTER_ALIASES": json.dumps({"default": ["scripted/agent-model"]}),
        }
        with live_app(home, settings) as live:
            tokens, job_id, refused = _run(live, model, unknown)
            with httpx.Client(base_url=live.url, headers=live.auth, timeout=60) as admin:
                events = admin.get(f"/jobs/{job_id}/events", params={"after": 0}).text
            audit = [dataclasses.asdict(row) for row in live.services.audit.list(limit=10_000)]
            admin_token = live.token
        lines = list(handler.lines)
    found = {
        **tokens,
        "admin token": admin_token,
        "unknown token": unknown,
        f"provider key ({KEY_ENV})": key,
        "provider key (api_key)": inline,
        "wrong provider key": wrong,
    }
    return Session(found, lines, audit, events, job_id, refused)


def _leaks(session: Session, texts: list[str]) -> list[str]:
    return [
        f"{what} in: {text[:400]}"
        for text in texts
        for what, secret in session.secrets.items()
        if secret in text
    ]


def test_no_log_line_holds_a_secret(session: Session) -> None:
    assert _leaks(session, session.lines) == []


def test_no_audit_row_or_job_event_holds_a_secret(session: Session) -> None:
    rows = [json.dumps(row, default=str) for row in session.audit]
    assert _leaks(session, [*rows, session.events]) == []


def test_the_capture_holds_the_session(session: Session) -> None:
    """The scans above read the session's own lines and rows, with ember's fields."""
    assert session.refused[0] >= 400 and session.refused[1:] == (401, 401)
    entries = session.entries()
    access = [e for e in entries if e["logger"] == "ember.access"]
    chats = [e for e in access if e["path"] == "/v1/chat/completions"]
    assert [(e["principal"], e["status"]) for e in chats] == [
        (PRINCIPAL, 200),
        (PRINCIPAL, session.refused[0]),
    ]
    assert all(isinstance(e["latencyMs"], float) and e["requestId"] for e in chats)
    ws = [e for e in access if e["path"] == f"/jobs/{session.job_id}/ws"]
    assert [(e["principal"], e["status"]) for e in ws] == [(PRINCIPAL, 101)]
    refused = [e for e in access if e["path"] == "/jobs" and e["status"] == 401]
    assert [e["principal"] for e in refused] == [None, None]

    calls = [e for e in entries if e["msg"] == "provider call"]
    fields = ("provider", "model", "outcome", "principal")
    by_provider = {e["provider"]: e for e in calls}
    assert [by_provider["fake"][f] for f in fields] == ["fake", "echo-model", "ok", PRINCIPAL]
    assert by_provider["fake"]["tokens"] > 0 and by_provider["fake"]["latencyMs"] > 0
    assert by_provider["wrong"]["outcome"] != "ok"
    agent = [e for e in calls if e["provider"] == "scripted"]
    assert len(agent) == len(SCRIPT)
    assert {(e["jobId"], e["principal"], e["outcome"]) for e in agent} == {
        (session.job_id, PRINCIPAL, "ok")
    }

    job = [e for e in entries if e.get("jobId") == session.job_id]
    assert {"job started", "job succeeded"} <= {e["msg"] for e in job}
    assert all(e["traceId"] for e in [*chats, *calls, *job])

    audited = [(row["action"], row["outcome"]) for row in session.audit]
    assert audited.count(("token.create", "ok")) == 2
    assert audited.count(("token.revoke", "ok")) == 1
