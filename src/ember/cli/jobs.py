"""``ember jobs submit|list|show|watch|trace|cancel``: a client of a running ember's ``/jobs`` API.

The API is at ``--url`` (default ``http://{server.host}:{server.port}`` of the config) and
the token comes from ``--token`` or ``$EMBER_TOKEN``, sent as ``Authorization: Bearer``; with
none there is no header, which a loopback ember without tokens accepts. A problem+json answer
is raised as the :class:`~ember.errors.EmberError` of its ``code`` and printed as
``error[code]: detail`` (exit 1), and so is a job that failed or was cancelled; ember not
answering at all is ``not_ready``. ``watch`` follows the job's Server-Sent Events; when the
connection drops before the final ``state`` event it reconnects with ``Last-Event-ID`` set to
the last event it printed, so no event is printed twice or skipped. ``trace`` prints the
job's span trees (``GET /jobs/{id}/trace``) as indented text, or as JSON.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import typer
from rich.markup import escape
from rich.table import Table

from ember.cli.common import (
    ConfigOption,
    TokenOption,
    UrlOption,
    api_client,
    console,
    notes,
)
from ember.cli.job_events import Printer
from ember.cli.jobs_client import JobsClient, follow, json_body
from ember.errors import JobCancelled, error_for_code
from ember.jobs.states import JobState
from ember.observability.traces import render_forest

__all__ = ["jobs_app", "register"]

jobs_app = typer.Typer(
    help="Submit, list, inspect, follow and cancel jobs on a running ember.", no_args_is_help=True
)

JobId = Annotated[str, typer.Argument(metavar="ID", help="A job id (`submit` prints it).")]


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


def watch_job(client: JobsClient, job_id: str, after: int = 0, as_json: bool = False) -> None:
    """Print the job's events after ``after`` until it ends.

    :raises EmberError: it failed (its code) or was cancelled (``job_cancelled``).
    """
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
            watch_job(client, job["id"], 0, as_json=False)


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
        watch_job(client, job_id, after, as_json)


@jobs_app.command("trace")
def trace(
    job_id: JobId,
    attribute: Annotated[
        list[str] | None,
        typer.Option(
            "--attribute",
            "-a",
            help="Show this span attribute where a span has it (repeatable), e.g. "
            "gen_ai.usage.output_tokens.",
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the API's answer: the span trees as JSON.")
    ] = False,
    url: UrlOption = None,
    token: TokenOption = None,
    config_path: ConfigOption = None,
) -> None:
    """Print a job's trace: one line per span (name, service, duration, status), indented
    under its parent. Spans reach it about a second after they end."""
    with api_client(url, token, config_path) as client:
        answer = json_body(client.call("GET", f"/jobs/{quote(job_id, safe='')}/trace"))
    if as_json:
        typer.echo(json.dumps(answer, indent=2, ensure_ascii=False))
        return
    typer.echo(f"trace {answer['trace_id']} ({answer['spans']} spans)")
    typer.echo(render_forest(answer["roots"], attribute or ()))


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
