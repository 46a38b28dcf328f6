"""The memory commands' way to a running ember: its ``/collections`` routes and ``reindex``
jobs over HTTP, so a one-line search costs one request instead of loading the embedding model
in the CLI process.

:func:`remote_url` decides where a command works: over HTTP at ``--url``, else at the URL a
running ``ember up`` of the same home recorded; locally (the database and indexes under
``$EMBER_HOME``) with ``--local``, with ``--workspace`` (an operator's view of the store: over
HTTP the workspace is the token's), or when no ember runs.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

from ember.auth import DEFAULT_WORKSPACE
from ember.cli.common import checked_url
from ember.cli.jobs_client import Event, JobsClient, follow, json_body
from ember.cli.server import recorded_url
from ember.config import EmberConfig
from ember.errors import CollectionExists, EmberError, error_for_code
from ember.memory.extract import SourceDocument
from ember.memory.ingest import IngestReport
from ember.memory.preparer import DocumentOutcome

__all__ = ["BATCH_BYTES", "BATCH_DOCUMENTS", "RemoteMemory", "remote_memory", "remote_url"]

BATCH_DOCUMENTS = 200
"""The most documents one ``POST /collections/{name}/documents`` carries."""
BATCH_BYTES = 3 * 1024 * 1024
"""The most content bytes one request carries (a larger document goes alone)."""


def remote_url(config: EmberConfig, url: str | None, *, local: bool, workspace: str) -> str | None:
    """The running ember a memory command talks to, or ``None`` to work locally."""
    if local or workspace != DEFAULT_WORKSPACE:
        return None
    return url or recorded_url(config)


@contextmanager
def remote_memory(url: str, token: str | None) -> Iterator[RemoteMemory]:
    """The memory plane of the ember at ``url`` (checked as ``--url``), sending ``token``."""
    client = JobsClient(checked_url(url), token)
    try:
        yield RemoteMemory(client)
    finally:
        client.close()


def _path(name: str) -> str:
    return f"/collections/{quote(name, safe='')}"


class RemoteMemory:
    """The memory plane of the ember ``client`` talks to. Every method raises the
    :class:`EmberError` of ember's answer, and ``not_ready`` when ember cannot be reached."""

    def __init__(self, client: JobsClient) -> None:
        self._client = client

    def search(self, collection: str, body: dict[str, Any]) -> list[dict[str, Any]]:
        """The hits of ``POST /collections/{name}/search``."""
        answer = json_body(self._client.call("POST", f"{_path(collection)}/search", json=body))
        return list(answer["hits"])

    def collections(self) -> Iterator[dict[str, Any]]:
        """Every collection the token's workspace has, by name."""
        after: str | None = None
        while True:
            params = {"limit": 1000, **({"after": after} if after else {})}
            page = json_body(self._client.call("GET", "/collections", params=params))
            yield from page["items"]
            after = page.get("next")
            if not after:
                return

    def create(self, name: str, description: str = "", *, exist_ok: bool = False) -> bool:
        """Create ``name``; ``False`` when it exists and ``exist_ok``."""
        try:
            self._client.call(
                "POST", "/collections", json={"name": name, "description": description}
            )
        except CollectionExists:
            if not exist_ok:
                raise
            return False
        return True

    def delete(self, name: str) -> None:
        self._client.call("DELETE", _path(name))

    def ingest(
        self,
        collection: str,
        documents: Iterable[SourceDocument | EmberError],
        progress: Callable[[int, IngestReport], None] | None = None,
    ) -> IngestReport:
        """Send ``documents`` in batches (:data:`BATCH_DOCUMENTS`, :data:`BATCH_BYTES`); a
        document that could not be read is a ``failed`` outcome, as in a local ingest.
        ``progress(documents done, report so far)`` after each batch."""
        report = IngestReport(collection)
        started = time.perf_counter()
        done = 0
        for batch, unread in _batches(documents):
            if batch:
                answer = json_body(
                    self._client.call(
                        "POST", f"{_path(collection)}/documents", json={"documents": batch}
                    )
                )
                report.outcomes += [DocumentOutcome(**o) for o in answer["documents"]]
                report.index_error = answer.get("index_error") or report.index_error
            report.outcomes += unread
            done += len(batch) + len(unread)
            if progress is not None:
                progress(done, report)
        report.seconds = time.perf_counter() - started
        return report

    def reindex(self, collection: str, emit: Callable[[Event], None]) -> dict[str, Any]:
        """Run a ``reindex`` job of ``collection`` and follow it, ``emit`` called with each
        event; returns its result.

        :raises EmberError: the job failed (its code) or was cancelled.
        """
        body = {"kind": "reindex", "input": {"collection": collection}}
        job = json_body(self._client.call("POST", "/jobs", json=body))
        outcome = follow(self._client, job["id"], 0, emit)
        if outcome.state != "succeeded":
            raise error_for_code(outcome.code or "job_error")(
                outcome.detail or f"the reindex job {job['id']} ended {outcome.state}"
            )
        answer = json_body(self._client.call("GET", f"/jobs/{quote(job['id'], safe='')}/result"))
        return dict(answer["result"])


def _batches(
    documents: Iterable[SourceDocument | EmberError],
) -> Iterator[tuple[list[dict[str, Any]], list[DocumentOutcome]]]:
    """``(documents to send, then the outcomes of unreadable ones)`` in input order: a batch
    ends before a document that would overfill it and at each unreadable one."""
    batch: list[dict[str, Any]] = []
    size = 0
    for item in documents:
        if isinstance(item, EmberError):
            yield batch, [DocumentOutcome("", "failed", error_code=item.code, error=item.detail)]
            batch, size = [], 0
            continue
        if batch and (len(batch) >= BATCH_DOCUMENTS or size + len(item.content) > BATCH_BYTES):
            yield batch, []
            batch, size = [], 0
        batch.append(_wire(item))
        size += len(item.content)
    if batch:
        yield batch, []


def _wire(document: SourceDocument) -> dict[str, Any]:
    wire: dict[str, Any] = {
        "source": document.source,
        "content_base64": base64.b64encode(document.content).decode("ascii"),
        "metadata": dict(document.metadata),
    }
    if document.media_type:
        wire["media_type"] = document.media_type
    if document.title:
        wire["title"] = document.title
    return wire
