"""``ember jobs``: the command line against a real HTTP server (uvicorn in a thread, the job
system in process on its event loop), and through a TCP proxy that cuts the event stream."""

from __future__ import annotations

import io
import json
import logging
import re
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict
from rich.console import Console
from typer.testing import CliRunner

from ember.cli import app
from ember.cli.job_events import Printer
from ember.cli.jobs_client import Event
from ember.config import EmberConfig, load_config
from ember.errors import ProviderUnavailable
from ember.jobs.bus import LocalJobBus
from ember.jobs.context import JobContext
from ember.jobs.dispatcher import LeaseDispatcher
from ember.jobs.events import SqlEventStore
from ember.jobs.hub import EventHub
from ember.jobs.kinds import JobKind
from ember.jobs.pool import LocalWorkerPool
from ember.jobs.repository import SqlJobRepository
from ember.jobs.runner import JobRunner
from ember.serve_app import build_context, create_app
from ember.services import Services
from ember.storage import Database, Migrator
from tests.support.postgres import free_port

runner = CliRunner()


class TalkInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    words: list[str] = ["Hello", ", ", "world"]
    fail: bool = False


async def talk(context: JobContext, payload: TalkInput) -> dict[str, Any]:
    """A log line, the words as tokens, a progress event; fails at the end when asked."""
    await context.log("starting", words=len(payload.words))
    for word in payload.words:
        await context.token(word)
    await context.progress(1, 1)
    if payload.fail:
        raise ProviderUnavailable("the model server went away")
    return {"said": "".join(payload.words)}


def kinds(config: EmberConfig) -> list[JobKind]:
    """A ``jobs.plugins`` entry point: this module's kind."""
    return [JobKind("talk", TalkInput, talk, "Tokens, a log line and progress.")]


@dataclass
class Ember:
    url: str
    port: int
    jobs: SqlJobRepository

    def invoke(self, *args: str, env: dict[str, str] | None = None, url: bool = True):
        where = ["--url", self.url] if url else []
        return runner.invoke(app, ["jobs", *args, *where], env={"COLUMNS": "250", **(env or {})})

    def submit(self, kind: str, payload: dict[str, Any]) -> str:
        done = self.invoke("submit", kind, "--input", json.dumps(payload))
        assert done.exit_code == 0, done.output
        return done.stdout.strip()

    def until(self, job_id: str, state: str, timeout_s: float = 20.0) -> None:
        deadline = time.monotonic() + timeout_s
        while self.jobs.get(job_id).state != state:
            assert time.monotonic() < deadline, f"job {job_id} never became {state}"
            time.sleep(0.02)


def job_system(config: EmberConfig, database: Database):
    """The hub, the dispatcher and a pool per kind, as the cluster's actors would run them."""
    kinds_ = Services.build(config, database=database).kinds
    jobs = SqlJobRepository(database)
    hub = EventHub(SqlEventStore(database), ring_size=64, flush_interval_s=0.02)

    def make_runner(owner: str) -> JobRunner:
        return JobRunner(jobs, kinds_, hub.publish, owner, lease_ttl_s=5.0, renew_interval_s=0.1)

    pools = {name: LocalWorkerPool(make_runner, size=2) for name in kinds_.names()}
    return LocalJobBus(hub, LeaseDispatcher(jobs, pools, hub.publish, lease_ttl_s=5.0), 0.05), pools


@pytest.fixture(scope="module")
def quiet_logs() -> Iterator[None]:
    """The server thread logs while CliRunner swaps sys.stderr (and an earlier `ember up`
    test may have left the ``ember`` logger writing to a closed capture): keep its records
    away from the streams under test, in pytest's log capture only."""
    logger = logging.getLogger("ember")
    saved = logger.handlers, logger.propagate
    logger.handlers, logger.propagate = [logging.NullHandler()], True
    try:
        yield
    finally:
        logger.handlers, logger.propagate = saved


@pytest.fixture(scope="module")
def ember(tmp_path_factory: pytest.TempPathFactory, quiet_logs: None) -> Iterator[Ember]:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    env = {
        "EMBER_HOME": str(tmp_path_factory.mktemp("jobs-cli")),
        "EMBER_SERVER_PORT": str(port),
        "EMBER_JOBS_PLUGINS": "tests.jobs.plugin:kinds,tests.cli.test_jobs_cli:kinds",
        "EMBER_JOBS_HEARTBEAT_S": "0.5",
        "EMBER_AUTH_RATE_LIMIT_PER_S": "0",
    }
    config = load_config(None, env)
    database = Database.from_config(config)
    Migrator(database).upgrade()
    bus, pools = job_system(config, database)
    context = build_context(config, bus=bus)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        bus.start()
        try:
            yield
        finally:
            for pool in pools.values():
                for worker in pool.runners.values():
                    for job_id in list(worker._tasks):
                        worker.cancel(job_id)
                await pool.drain()
            await bus.stop()

    api = create_app(context)
    api.router.lifespan_context = lifespan
    server = uvicorn.Server(
        uvicorn.Config(
            api, log_config=None, log_level="warning", lifespan="on", timeout_graceful_shutdown=1
        )
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the API did not start"
        time.sleep(0.01)
    try:
        yield Ember(f"http://127.0.0.1:{port}", port, SqlJobRepository(database))
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        database.dispose()
        context.database.dispose()


class CuttingProxy:
    """Forwards TCP connections to ``port``. On the first ``cuts`` event streams it closes the
    client's connection ``cut_after`` bytes after the ``text/event-stream`` response began
    (mid-event, usually), as a dropped network would."""

    def __init__(self, port: int, cut_after: int, cuts: int = 1) -> None:
        self._port = port
        self._cut_after = cut_after
        self.cuts_left = cuts
        self.requests: list[bytes] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._listener.close()

    @property
    def last_event_ids(self) -> list[int]:
        """The ``Last-Event-ID`` of every event-stream request, in order."""
        sent = b"".join(self.requests).decode()
        return [int(value) for value in re.findall(r"(?im)^last-event-id: *(\d+)", sent)]

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        upstream = socket.create_connection(("127.0.0.1", self._port))
        threading.Thread(target=self._upload, args=(client, upstream), daemon=True).start()
        seen, budget = b"", None
        try:
            while data := upstream.recv(65536):
                if budget is None:
                    seen = (seen + data)[-4096:]
                    with self._lock:
                        if b"text/event-stream" in seen and self.cuts_left > 0:
                            self.cuts_left -= 1
                            start = seen.index(b"text/event-stream")
                            budget = self._cut_after + max(0, len(data) - (len(seen) - start))
                if budget is not None:
                    client.sendall(data[:budget])
                    budget -= len(data)
                    if budget <= 0:
                        break
                else:
                    client.sendall(data)
        except OSError:
            pass
        finally:
            for end in (client, upstream):
                with suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)
                end.close()

    def _upload(self, client: socket.socket, upstream: socket.socket) -> None:
        try:
            while data := client.recv(65536):
                with self._lock:
                    self.requests.append(data)
                upstream.sendall(data)
        except OSError:
            pass


def json_events(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def test_submit_and_watch_prints_the_events_in_order_and_exits_0(ember: Ember) -> None:
    done = ember.invoke("submit", "talk", "--watch")
    assert done.exit_code == 0, done.output
    lines = done.stdout.splitlines()
    job_id = lines[0]
    assert re.fullmatch(r"[0-9a-zA-Z_-]{8,}", job_id), lines
    assert f"job {job_id}: queued" in done.stderr
    assert lines[1:] == [
        "state: queued",
        "state: running (attempt 1)",
        "log: starting words=3",
        "Hello, world",
        "progress: 1/1",
        'result: {"said": "Hello, world"}',
        "state: succeeded",
    ]


def test_submit_alone_prints_only_the_id_on_stdout(ember: Ember) -> None:
    done = ember.invoke("submit", "steps", "--input", '{"steps": 1, "step_s": 0}')
    assert done.exit_code == 0, done.output
    job_id = done.stdout.strip()
    assert done.stdout == f"{job_id}\n"
    ember.until(job_id, "succeeded")


def test_input_file_and_stdin(ember: Ember, tmp_path) -> None:
    path = tmp_path / "input.json"
    path.write_text('{"words": ["from", " a file"]}')
    from_file = ember.invoke("submit", "talk", "--input-file", str(path), "--watch")
    assert from_file.exit_code == 0, from_file.output
    assert "from a file" in from_file.stdout.splitlines()
    piped = runner.invoke(
        app,
        ["jobs", "submit", "talk", "--input-file", "-", "-w", "--url", ember.url],
        input='{"words": ["piped"]}',
    )
    assert piped.exit_code == 0, piped.output
    assert "piped" in piped.stdout.splitlines()


def test_a_failed_job_exits_1_with_its_code(ember: Ember) -> None:
    done = ember.invoke("submit", "talk", "--input", '{"fail": true}', "--watch")
    assert done.exit_code == 1, done.output
    assert done.stdout.splitlines()[-1] == "state: failed (provider_unavailable)"
    assert "error[provider_unavailable]: the model server went away" in done.stderr
    job_id = done.stdout.splitlines()[0]
    again = ember.invoke("watch", job_id, "--json")
    assert again.exit_code == 1
    events = json_events(again.stdout)
    assert [e["type"] for e in events][-2:] == ["error", "state"]
    assert "error[provider_unavailable]: the model server went away" in again.stderr
    result = ember.invoke("show", job_id, "--result")
    assert result.exit_code == 1
    assert "error[provider_unavailable]" in result.stderr


def test_cancel_a_running_job_then_watch_exits_1(ember: Ember) -> None:
    job_id = ember.submit("steps", {"steps": 2000, "step_s": 0.01})
    ember.until(job_id, "running")
    cancelled = ember.invoke("cancel", job_id)
    assert cancelled.exit_code == 0, cancelled.output
    assert cancelled.stdout.strip() == f"job {job_id}: cancelling"
    watched = ember.invoke("watch", job_id)
    assert watched.exit_code == 1, watched.output
    assert "log: cancelled inside the handler" in watched.stdout
    assert watched.stdout.splitlines()[-1] == "state: cancelled"
    assert f"error[job_cancelled]: job {job_id} was cancelled" in watched.stderr
    again = ember.invoke("cancel", job_id)
    assert again.exit_code == 1
    assert "error[job_finished]" in again.stderr


def test_json_events_have_contiguous_seqs_and_after_skips(ember: Ember) -> None:
    job_id = ember.submit("steps", {"steps": 5, "step_s": 0.01})
    done = ember.invoke("watch", job_id, "--json")
    assert done.exit_code == 0, done.output
    events = json_events(done.stdout)
    assert len(events) == len(done.stdout.splitlines())
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[-1] == {"seq": len(events), "type": "state", "data": {"state": "succeeded"}}
    assert [e["data"]["done"] for e in events if e["type"] == "progress"] == [1, 2, 3, 4, 5]
    tail = ember.invoke("watch", job_id, "--json", "--after", "3")
    assert tail.exit_code == 0, tail.output
    assert json_events(tail.stdout) == events[3:]
    past_the_end = ember.invoke("watch", job_id, "--json", "--after", "1000")
    assert past_the_end.exit_code == 0, past_the_end.output
    assert past_the_end.stdout == ""


def test_watch_resumes_after_a_dropped_connection(ember: Ember) -> None:
    job_id = ember.submit("steps", {"steps": 40, "step_s": 0.01})
    proxy = CuttingProxy(ember.port, cut_after=700)
    try:
        done = runner.invoke(app, ["jobs", "watch", job_id, "--json", "--url", proxy.url])
    finally:
        proxy.close()
    assert done.exit_code == 0, done.output
    seqs = [event["seq"] for event in json_events(done.stdout)]
    assert seqs == list(range(1, len(seqs) + 1)), seqs
    assert json_events(done.stdout)[-1]["data"] == {"state": "succeeded"}
    assert proxy.cuts_left == 0
    first, resumed = proxy.last_event_ids
    assert first == 0
    assert 0 < resumed < seqs[-1]
    assert f"connection lost after event {resumed}" in done.stderr
    assert "reconnecting in 0.5 s (1/5)" in done.stderr


def test_watch_gives_up_when_the_stream_keeps_dropping(
    ember: Ember, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ember.cli.jobs_client as jobs_cli

    monkeypatch.setattr(jobs_cli, "BACKOFF_S", 0.01)
    job_id = ember.submit("steps", {"steps": 400, "step_s": 0.01})
    proxy = CuttingProxy(ember.port, cut_after=0, cuts=100)
    try:
        done = runner.invoke(app, ["jobs", "watch", job_id, "--url", proxy.url])
    finally:
        proxy.close()
        ember.invoke("cancel", job_id)
    assert done.exit_code == 1, done.output
    assert "(5/5)" in done.stderr
    assert f"error[not_ready]: lost the events of job {job_id}" in done.stderr
    assert "after 5 reconnects" in done.stderr


def test_list_filters_and_pages(ember: Ember) -> None:
    ok = [ember.submit("talk", {"words": [f"w{i}"]}) for i in range(3)]
    bad = ember.submit("talk", {"fail": True})
    for job_id in ok:
        ember.until(job_id, "succeeded")
    ember.until(bad, "failed")

    listed = ember.invoke("list", "--kind", "talk")
    assert listed.exit_code == 0, listed.output
    rows = {line.split()[1]: line for line in listed.stdout.splitlines() if line.startswith("│")}
    assert set(ok) | {bad} <= set(rows)
    assert "succeeded" in rows[ok[0]] and "1/3" in rows[ok[0]]
    assert "failed" in rows[bad] and "provider_unavailable" in rows[bad]

    narrow = runner.invoke(app, ["jobs", "list", "--url", ember.url], env={"COLUMNS": "80"})
    assert all(job_id in narrow.stdout for job_id in [*ok, bad]), "ids must never wrap"

    failed = ember.invoke("list", "--kind", "talk", "--state", "failed")
    assert bad in failed.stdout and not any(job_id in failed.stdout for job_id in ok)

    one = ember.invoke("list", "--kind", "talk", "--limit", "1")
    assert one.exit_code == 0, one.output
    assert sum(job_id in one.stdout for job_id in [*ok, bad]) == 1
    assert "add --all for every page" in one.stderr
    every = ember.invoke("list", "--kind", "talk", "--limit", "1", "--all")
    assert every.exit_code == 0, every.output
    assert all(job_id in every.stdout for job_id in [*ok, bad])
    assert every.stderr == ""

    unknown_state = ember.invoke("list", "--state", "sleeping")
    assert unknown_state.exit_code == 2


def test_show_and_show_result(ember: Ember) -> None:
    job_id = ember.submit("talk", {"words": ["shown"]})
    ember.until(job_id, "succeeded")
    shown = ember.invoke("show", job_id)
    assert shown.exit_code == 0, shown.output
    rows = [line.split(None, 1) for line in shown.stdout.splitlines() if line.strip()]
    fields = {key: value.strip() for key, value in rows}
    assert fields["id"] == job_id
    assert fields["kind"] == "talk"
    assert fields["state"] == "succeeded"
    assert fields["principal"] == "local"
    assert fields["attempts"] == "1/3"
    result = ember.invoke("show", job_id, "--result")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"said": "shown"}

    running = ember.submit("steps", {"steps": 2000, "step_s": 0.01})
    unfinished = ember.invoke("show", running, "--result")
    ember.invoke("cancel", running)
    assert unfinished.exit_code == 1
    assert "error[job_not_finished]" in unfinished.stderr


def test_idempotency_key(ember: Ember) -> None:
    args = ("submit", "talk", "--idempotency-key", "cli-key-1", "--input")
    first = ember.invoke(*args, '{"words": ["once"]}')
    second = ember.invoke(*args, '{"words": ["once"]}')
    assert first.exit_code == second.exit_code == 0, first.output + second.output
    assert first.stdout == second.stdout
    assert "first submitted with this idempotency key" in second.stderr
    other = ember.invoke(*args, '{"words": ["twice"]}')
    assert other.exit_code == 1
    assert "error[idempotency_conflict]" in other.stderr


@pytest.mark.parametrize("command", [["show", "nope"], ["watch", "nope"], ["cancel", "nope"]])
def test_an_unknown_job_is_job_not_found(ember: Ember, command: list[str]) -> None:
    done = ember.invoke(*command)
    assert done.exit_code == 1
    assert "error[job_not_found]: " in done.stderr
    assert "Traceback" not in done.output


def test_server_errors_print_their_code(ember: Ember) -> None:
    unknown = ember.invoke("submit", "teleport")
    assert unknown.exit_code == 1
    assert "error[unknown_job_kind]" in unknown.stderr
    invalid = ember.invoke("submit", "steps", "--input", '{"steps": -1}')
    assert invalid.exit_code == 1
    assert "error[validation_failed]: input.steps: Input should be greater" in invalid.stderr


@pytest.mark.parametrize("how", ["env", "option"])
def test_the_token_is_sent_as_a_bearer_token(ember: Ember, how: str) -> None:
    bogus = "ember_" + "x" * 43
    if how == "env":  # EMBER_TOKEN is not a setting: the config still loads
        env = {"EMBER_TOKEN": bogus, "EMBER_SERVER_PORT": str(ember.port)}
        done = ember.invoke("list", env=env, url=False)
    else:
        done = ember.invoke("list", "--token", bogus)
    assert done.exit_code == 1
    assert "error[unauthorized]" in done.stderr


def test_the_url_defaults_to_the_configured_server(ember: Ember) -> None:
    found = ember.invoke("list", env={"EMBER_SERVER_PORT": str(ember.port)}, url=False)
    assert found.exit_code == 0, found.output
    assert "┃ id" in found.stdout


def test_ember_not_running_is_a_clear_message() -> None:
    port = free_port()
    for args in (["list"], ["watch", "some-job"], ["submit", "talk"]):
        done = runner.invoke(app, ["jobs", *args], env={"EMBER_SERVER_PORT": str(port)})
        assert done.exit_code == 1, done.output
        assert f"error[not_ready]: ember is not running at http://127.0.0.1:{port}" in done.stderr
        assert "Traceback" not in done.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--input", "{nope"], "Invalid value for '--input': not JSON"),
        (["--input", "[1, 2]"], "Invalid value for '--input': must be a JSON object, not list"),
        (["--input", "{}", "--input-file", "-"], "give --input or --input-file, not both"),
        (["--input-file", "missing.json"], "cannot read missing.json: [Errno 2]"),
        (["--url", "127.0.0.1:8000"], "is not an http:// or https:// URL"),
    ],
)
def test_bad_input_is_a_usage_error(args: list[str], message: str) -> None:
    # nothing listens at this URL: a request would exit 1, not 2
    url = ["--url", f"http://127.0.0.1:{free_port()}"] if "--url" not in args else []
    done = runner.invoke(app, ["jobs", "submit", "talk", *args, *url], env={"COLUMNS": "250"})
    assert done.exit_code == 2, done.output
    assert message in done.output


def test_progress_is_a_bar_on_a_terminal() -> None:
    screen = io.StringIO()
    printer = Printer(Console(file=screen, force_terminal=True, width=100))
    printer(Event(1, "state", {"state": "running", "attempt": 1}))
    for done in range(1, 4):
        printer(Event(1 + done, "progress", {"done": done, "total": 3, "phase": "embed"}))
    printer(Event(5, "token", {"text": "hi"}))
    printer(Event(6, "state", {"state": "succeeded"}))
    printer.close()
    text = screen.getvalue()
    assert "embed" in text and "3/3" in text
    assert "progress: " not in text
    assert text.rstrip().endswith("state: succeeded")
