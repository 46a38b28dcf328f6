"""``ember jobs submit|list|show|watch|cancel``: a client of a running ember's ``/jobs`` API.

The API is at ``--url`` (default ``http://{server.host}:{server.port}`` of the config) and
the token comes from ``--token`` or ``$EMBER_TOKEN``, sent as ``Authorization: Bearer``; with
none there is no header, which a loopback ember without tokens accepts. A problem+json answer
is raised as the :class:`~ember.errors.EmberError` of its ``code`` and printed as
``error[code]: detail`` (exit 1), and so is a job that failed or was cancelled; ember not
answering at all is ``not_ready``. ``watch`` follows the job's Server-Sent Events; when the
connection drops before the final ``state`` event it reconnects with ``Last-Event-ID`` set to
the last event it printed, so no event is printed twice or skipped.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import httpx
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from ember.cli.jobs_client import Event, JobsClient, follow, json_body
from ember.config import EmberConfig, load_config
from ember.errors import EmberError, JobCancelled, error_for_code
from ember.jobs.states import JobState

__all__ = [
    "ConfigOption",
    "Printer",
    "TokenOption",
    "UrlOption",
    "api_client",
    "describe",
    "jobs_app",
    "register",
]


console = Console()
notes = Console(stderr=True)
jobs_app = typer.Typer(
    help="Submit, list, inspect, follow and cancel jobs on a running ember.", no_args_is_help=True
)

UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url",
        help="ember's HTTP API (default: http://{server.host}:{server.port} of the config).",
    ),
]
TokenOption = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar="EMBER_TOKEN",
        show_envvar=True,
        help="API token, sent as `Authorization: Bearer` (none: no header, which a loopback "
        "ember without tokens accepts).",
    ),
]
ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="YAML config file.", dir_okay=False)
]
JobId = Annotated[str, typer.Argument(metavar="ID", help="A job id (`submit` prints it).")]


def _fields(data: dict[str, Any], skip: Iterable[str]) -> str:
    rest = [f"{key}={value}" for key, value in data.items() if key not in set(skip)]
    return f" {' '.join(rest)}" if rest else ""


def _short(data: Any, limit: int = 200) -> str:
    text = json.dumps(data, ensure_ascii=False)
    return text if len(text) <= limit else f"{text[:limit]}… (`ember jobs show ID --result`)"


def describe(event: Event) -> str:
    """One line for people: ``state: running (attempt 1)``, ``log: ...``, ``progress: 3/10``."""
    data = event.data
    if event.type == "state":
        extras = [f"attempt {data['attempt']}"] if "attempt" in data else []
        extras += [str(data[key]) for key in ("reason", "code") if data.get(key)]
        return f"state: {data.get('state')}" + (f" ({', '.join(extras)})" if extras else "")
    if event.type == "log":
        return f"log: {data.get('message', '')}{_fields(data, {'message'})}"
    if event.type == "progress":
        total = data.get("total")
        count = f"{data.get('done')}/{total}" if total is not None else str(data.get("done"))
        return f"progress: {count}{_fields(data, {'done', 'total'})}"
    if event.type == "error":
        return f"error: {data.get('code')}: {data.get('detail')}"
    return f"{event.type}: {_short(data)}"


class Printer:
    """Writes a job's events as they arrive: one JSON object per line (``as_json``), or a line
    per event with ``token`` texts run together and, on a terminal, ``progress`` as a bar.
    An ``error`` event is left to the ``error[code]`` line the command ends with."""

    def __init__(self, out: Console, as_json: bool = False) -> None:
        self._out = out
        self._json = as_json
        self._in_tokens = False
        self._bar: Progress | None = None
        self._task: TaskID | None = None

    def __call__(self, event: Event) -> None:
        if self._json:
            line = json.dumps({"seq": event.seq, "type": event.type, "data": event.data})
            self._out.out(line, highlight=False)
            return
        if event.type == "token":
            self._stop_bar()
            self._out.out(str(event.data.get("text", "")), end="", highlight=False)
            self._in_tokens = True
            return
        self._end_tokens()
        if event.type == "progress" and self._out.is_terminal:
            self._progress(event.data)
        elif event.type != "error":
            if event.final:
                self._stop_bar()
            self._out.print(describe(event), markup=False, highlight=False, soft_wrap=True)

    def close(self) -> None:
        """End an open line of tokens and a progress bar."""
        self._end_tokens()
        self._stop_bar()

    def _end_tokens(self) -> None:
        if self._in_tokens:
            self._out.out("")
            self._in_tokens = False

    def _stop_bar(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar, self._task = None, None

    def _progress(self, data: dict[str, Any]) -> None:
        total = data.get("total")
        done = data.get("done") or 0
        phase = str(data.get("phase") or "progress")
        detail = _fields(data, {"done", "total", "phase"}).strip()
        if self._bar is None or self._task is None:
            self._bar = Progress(
                TextColumn("{task.description}", markup=False, style="bold"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[detail]}", markup=False),
                TimeElapsedColumn(),
                console=self._out,
            )
            self._bar.start()
            self._task = self._bar.add_task(phase, total=total, completed=done, detail=detail)
        self._bar.update(self._task, description=phase, completed=done, total=total, detail=detail)


def _default_url(config: EmberConfig) -> str:
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(
        config.server.host, config.server.host
    )
    return f"http://{f'[{host}]' if ':' in host else host}:{config.server.port}"


def _report(error: EmberError) -> None:
    from ember.cli.main import errors

    message = escape(f"error[{error.code}]: {error.detail}")
    errors.print(f"[bold red]{message}[/]", highlight=False, soft_wrap=True)


@contextmanager
def api_client(
    url: str | None, token: str | None, config_path: Path | None
) -> Iterator[JobsClient]:
    """A client of the chosen ember. Errors print as in ``reported()``; the configuration's
    own errors exit 2, everything the server (or a job) reports exits 1."""
    from ember.cli.main import reported

    with reported():
        base = url or _default_url(load_config(config_path, os.environ))
    try:
        parsed = httpx.URL(base)
    except httpx.InvalidURL as exc:
        raise typer.BadParameter(f"{base!r}: {exc}", param_hint="'--url'") from exc
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise typer.BadParameter(
            f"{base!r} is not an http:// or https:// URL", param_hint="'--url'"
        )
    client = JobsClient(base, token)
    try:
        yield client
    except EmberError as exc:
        _report(exc)
        raise typer.Exit(1) from None
    finally:
        client.close()


def _payload(text: str | None, path: Path | None) -> dict[str, Any]:
    hint = "'--input-file'" if path is not None else "'--input'"
    if text is not None and path is not None:
        raise typer.BadParameter("give --input or --input-file, not both", param_hint=hint)
    if path is not None:
        try:
            text = sys.stdin.read() if str(path) == "-" else path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise typer.BadParameter(f"cannot read {path}: {exc}", param_hint=hint) from exc
    if text is None:
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise typer.BadParameter(f"not JSON: {exc}", param_hint=hint) from exc
    if not isinstance(value, dict):
        raise typer.BadParameter(
            f"must be a JSON object, not {type(value).__name__}", param_hint=hint
        )
    return value


def _watch(client: JobsClient, job_id: str, after: int, as_json: bool) -> None:
    client.job(job_id)
    printer = Printer(console, as_json)
    try:
        outcome = follow(client, job_id, after, printer)
    finally:
        printer.close()
    if outcome.state == JobState.CANCELLED:
        raise JobCancelled(f"job {job_id} was cancelled")
    if outcome.state == JobState.FAILED:
        detail = outcome.detail or client.job(job_id).get("error_detail")
        raise error_for_code(outcome.code)(detail or f"job {job_id} failed")


def _when(value: str | None) -> str:
    return datetime.fromisoformat(value).strftime("%Y-%m-%d %H:%M:%S") if value else "-"


_STYLE = {"succeeded": "green", "failed": "red", "cancelled": "yellow", "cancelling": "yellow"}


def _state(state: str) -> str:
    return f"[{_STYLE[state]}]{state}[/]" if state in _STYLE else escape(state)


@jobs_app.command("submit")
def submit(
    kind: Annotated[str, typer.Argument(help="The job kind (see docs/jobs.md).")],
    input_json: Annotated[
        str | None, typer.Option("--input", "-i", help="The input as a JSON object: '{\"a\": 1}'.")
    ] = None,
    input_file: Annotated[
        Path | None,
        typer.Option(
            "--input-file",
            help="A file holding the input as a JSON object (`-`: stdin).",
            dir_okay=False,
        ),
    ] = None,
    idempotency_key: Annotated[
        str | None,
        typer.Option(help="Same key, same input: the same job (another input: conflict)."),
    ] = None,
    watch: Annotated[
        bool, typer.Option("--watch", "-w", help="Then follow it as `watch`.")
    ] = False,
    url: UrlOption = None,
    token: TokenOption = None,
    config_path: ConfigOption = None,
) -> None:
    """Queue a job; print its id alone on stdout (its state goes to stderr)."""
    payload = _payload(input_json, input_file)
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    with api_client(url, token, config_path) as client:
        body = {"kind": kind, "input": payload}
        response = client.call("POST", "/jobs", json=body, headers=headers)
        job = json_body(response)
        typer.echo(job["id"])
        replayed = response.headers.get("Idempotent-Replayed") == "true"
        note = " (the job first submitted with this idempotency key)" if replayed else ""
        notes.print(f"job {job['id']}: {job['state']}{note}", highlight=False, markup=False)
        if watch:
            _watch(client, job["id"], 0, as_json=False)


@jobs_app.command("list")
def list_jobs(
    states: Annotated[
        list[JobState] | None, typer.Option("--state", "-s", help="Only this state; repeatable.")
    ] = None,
    kinds: Annotated[
        list[str] | None, typer.Option("--kind", "-k", help="Only this kind; repeatable.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=500, help="Jobs per page.")] = 50,
    every: Annotated[bool, typer.Option("--all", help="Follow every page, not just one.")] = False,
    url: UrlOption = None,
    token: TokenOption = None,
    config_path: ConfigOption = None,
) -> None:
    """List jobs, newest first."""
    query: list[tuple[str, str | int]] = [("limit", limit)]
    query += [("state", state.value) for state in states or ()]
    query += [("kind", kind) for kind in kinds or ()]
    found: list[dict[str, Any]] = []
    cursor: str | None = None
    with api_client(url, token, config_path) as client:
        while True:
            more = [("cursor", cursor)] if cursor else []
            page = json_body(client.call("GET", "/jobs", params=query + more))
            found += page["jobs"]
            cursor = page.get("next_cursor")
            if cursor is None or not every:
                break
    table = Table()
    table.add_column("id", no_wrap=True)  # whole, for copying: the other columns give way
    for name in ("kind", "state", "attempts", "created", "finished", "error"):
        table.add_column(name)
    for job in found:
        table.add_row(
            escape(job["id"]),
            escape(job["kind"]),
            _state(job["state"]),
            f"{job['attempts']}/{job['max_attempts']}",
            _when(job["created_at"]),
            _when(job["finished_at"]),
            escape(job["error_code"] or ""),
        )
    console.print(table)
    if cursor is not None:
        notes.print(f"more jobs than --limit {limit}: add --all for every page", highlight=False)


@jobs_app.command("show")
def show(
    job_id: JobId,
    result: Annotated[
        bool, typer.Option("--result", help="Print the result of a succeeded job as JSON.")
    ] = False,
    url: UrlOption = None,
    token: TokenOption = None,
    config_path: ConfigOption = None,
) -> None:
    """Show a job's fields, or with --result its result."""
    with api_client(url, token, config_path) as client:
        if result:
            answer = json_body(client.call("GET", f"/jobs/{quote(job_id, safe='')}/result"))
            typer.echo(json.dumps(answer["result"], indent=2, ensure_ascii=False))
            return
        job = client.job(job_id)
    error = f"{job['error_code']}: {job['error_detail']}" if job["error_code"] else "-"
    table = Table(show_header=False, box=None)
    for key, value in (
        ("id", escape(job["id"])),
        ("kind", escape(job["kind"])),
        ("state", _state(job["state"])),
        ("principal", escape(job["principal"])),
        ("attempts", f"{job['attempts']}/{job['max_attempts']}"),
        ("error", escape(error)),
        ("created", _when(job["created_at"])),
        ("started", _when(job["started_at"])),
        ("finished", _when(job["finished_at"])),
        ("request", escape(job["request_id"] or "-")),
    ):
        table.add_row(key, value)
    console.print(table)


@jobs_app.command("watch")
def watch(
    job_id: JobId,
    after: Annotated[
        int, typer.Option(min=0, help="Start after this event (0: from the first).")
    ] = 0,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per event: seq, type, data.")
    ] = False,
    url: UrlOption = None,
    token: TokenOption = None,
    config_path: ConfigOption = None,
) -> None:
    """Follow a job's events until it ends; exit 0 if it succeeded, 1 if not."""
    with api_client(url, token, config_path) as client:
        _watch(client, job_id, after, as_json)


@jobs_app.command("cancel")
def cancel(
    job_id: JobId,
    url: UrlOption = None,
    token: TokenOption = None,
    config_path: ConfigOption = None,
) -> None:
    """Cancel a job: a queued one never runs, a running one is stopped."""
    with api_client(url, token, config_path) as client:
        job = json_body(client.call("POST", f"/jobs/{quote(job_id, safe='')}/cancel"))
    console.print(f"job {escape(job['id'])}: {_state(job['state'])}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``ember jobs`` to ``app``."""
    app.add_typer(jobs_app, name="jobs")
