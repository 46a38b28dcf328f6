"""A client of a running ember's ``/jobs`` API, and a follower of a job's event stream that
resumes after a dropped connection (what ``ember jobs`` is built on).

Every call raises the :class:`~ember.errors.EmberError` of a problem+json answer's ``code``,
and :class:`~ember.errors.NotReady` when ember cannot be reached.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
from rich.console import Console

from ember.errors import EmberError, NotReady, error_for_code, error_for_status
from ember.jobs.states import TERMINAL, JobState

__all__ = ["Event", "JobsClient", "Outcome", "follow", "json_body"]

RECONNECTS = 5
"""Reconnects in a row (without an event in between) before ``watch`` gives up."""
BACKOFF_S = 0.5
"""Wait before the first reconnect; doubled for each further one, up to ``BACKOFF_MAX_S``."""
BACKOFF_MAX_S = 8.0
STREAM_READ_TIMEOUT_S = 60.0
"""Silence that counts as a dropped stream (ember sends a heartbeat every ``jobs.heartbeat_s``)."""

_FINAL = frozenset(state.value for state in TERMINAL)

notes = Console(stderr=True)


@dataclass(frozen=True)
class Event:
    """One event of a job's stream: ``seq`` (from 1, no gaps), ``type`` and ``data``."""

    seq: int
    type: str
    data: dict[str, Any]

    @property
    def final(self) -> bool:
        """Whether this event puts the job in a final state."""
        return self.type == "state" and self.data.get("state") in _FINAL


class _Dropped(Exception):
    """The event stream broke off (the reason is the message)."""


class JobsClient:
    """The ``/jobs`` routes of the ember at ``url``, over HTTP.

    Every method raises the :class:`EmberError` of a problem+json answer's ``code``, and
    :class:`NotReady` when ember cannot be reached.
    """

    def __init__(self, url: str, token: str | None = None, *, timeout_s: float = 30.0) -> None:
        self.url = url.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._timeout_s = timeout_s
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout_s)

    def close(self) -> None:
        self._http.close()

    def call(self, method: str, path: str, **options: Any) -> httpx.Response:
        """One request; returns the (2xx) response."""
        try:
            response = self._http.request(method, path, **options)
        except httpx.ConnectError as exc:
            raise NotReady(
                f"ember is not running at {self.url} ({exc}); start it with `ember up`, "
                "or pass --url"
            ) from exc
        except httpx.TimeoutException as exc:
            raise NotReady(f"ember at {self.url} did not answer in time ({exc})") from exc
        except httpx.HTTPError as exc:
            raise NotReady(f"the request to ember at {self.url} failed: {exc}") from exc
        _raise_for_problem(response)
        return response

    def job(self, job_id: str) -> dict[str, Any]:
        """The job (``GET /jobs/{id}``)."""
        return json_body(self.call("GET", f"/jobs/{quote(job_id, safe='')}"))

    def events(self, job_id: str, after: int) -> Iterator[Event]:
        """The job's events after ``after``, over one connection, until ember ends the stream.

        :raises _Dropped: the connection broke, or went silent for ``STREAM_READ_TIMEOUT_S``.
        """
        path = f"/jobs/{quote(job_id, safe='')}/events"
        headers = {"Accept": "text/event-stream", "Last-Event-ID": str(after)}
        timeout = httpx.Timeout(self._timeout_s, read=STREAM_READ_TIMEOUT_S)
        try:
            with self._http.stream("GET", path, headers=headers, timeout=timeout) as response:
                if response.is_error:
                    response.read()
                    _raise_for_problem(response)
                yield from _server_sent(response.iter_lines())
        except httpx.TransportError as exc:
            raise _Dropped(str(exc) or type(exc).__name__) from exc


def _raise_for_problem(response: httpx.Response) -> None:
    if response.is_success:
        return
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("code"), str):
        # problem+json has ``detail``; the Ollama dialect (``ember models``) has ``error``
        message = body.get("error") if isinstance(body.get("error"), str) else None
        detail = body.get("detail") or message or body.get("title")
        detail = detail or f"HTTP {response.status_code}"
        raise error_for_code(body["code"])(str(detail))
    text = " ".join(response.text.split())[:200]
    raise error_for_status(response.status_code)(
        f"HTTP {response.status_code} from {response.request.url}: {text}"
    )


def json_body(response: httpx.Response) -> dict[str, Any]:
    """The JSON object of a response.

    :raises EmberError: the body is not a JSON object.
    """
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise EmberError(f"{response.request.url} did not answer with a JSON object")
    return body


def _server_sent(lines: Iterable[str]) -> Iterator[Event]:
    """Events of a ``text/event-stream``; an event is complete at its blank line only."""
    seq: int | None = None
    kind, data = "message", []
    for line in lines:
        if line:
            if line.startswith(":"):
                continue
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "id":
                seq = int(value) if value.isdigit() else None
            elif field == "event":
                kind = value
            elif field == "data":
                data.append(value)
            continue
        if data:
            try:
                payload = json.loads("\n".join(data))
            except ValueError as exc:
                raise EmberError(f"the event stream sent data that is not JSON: {exc}") from exc
            if kind == "error" and seq is None:
                raise error_for_code(payload.get("code"))(payload.get("detail"))
            if seq is not None:
                yield Event(seq, kind, payload if isinstance(payload, dict) else {})
        seq, kind, data = None, "message", []


@dataclass(frozen=True)
class Outcome:
    """How a followed job ended."""

    state: str
    code: str | None = None
    detail: str | None = None


def follow(
    client: JobsClient,
    job_id: str,
    after: int,
    emit: Callable[[Event], None],
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> Outcome:
    """Call ``emit`` once for every event after ``after``, in order, until the job's final
    state; reconnect (with backoff, at most ``RECONNECTS`` times in a row) when the stream
    drops or ember is briefly unavailable, resuming after the last event emitted. A stream
    that ends without the final event (the hub lost it) ends with the job row's state.

    :raises NotReady: the stream kept dropping.
    """
    last, failures, error = after, 0, Outcome("failed")
    while True:
        try:
            for event in client.events(job_id, last):
                if event.seq <= last:
                    continue
                emit(event)
                last, failures = event.seq, 0
                if event.type == "error":
                    error = Outcome("failed", event.data.get("code"), event.data.get("detail"))
                if event.final:
                    state = str(event.data["state"])
                    if state == JobState.FAILED:
                        return Outcome(state, event.data.get("code") or error.code, error.detail)
                    return Outcome(state)
            job = client.job(job_id)
            if job["state"] in _FINAL:
                return Outcome(job["state"], job.get("error_code"), job.get("error_detail"))
            reason = "ember ended the stream before the job's final state"
        except _Dropped as exc:
            reason = str(exc)
        except NotReady as exc:
            reason = exc.detail
        failures += 1
        if failures > RECONNECTS:
            raise NotReady(
                f"lost the events of job {job_id} from {client.url} after {RECONNECTS} "
                f"reconnects: {reason}"
            )
        delay = min(BACKOFF_MAX_S, BACKOFF_S * 2 ** (failures - 1))
        notes.print(
            f"connection lost after event {last} ({reason}); reconnecting in {delay:g} s "
            f"({failures}/{RECONNECTS})",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
        sleep(delay)
