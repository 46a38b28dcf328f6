"""The ``ingest`` and ``reindex`` job kinds, over the memory plane as the job's workspace
sees it. ``create: true`` creates a missing collection atomically (concurrent jobs into one
new collection all succeed, and exactly one creates it).

The memory plane is synchronous (the embedding model dominates), so each job runs it in a
thread, building it there on first use too (importing torch and loading the model must not
block the worker's event loop, which renews the job's lease). Cancelling the job sets a stop
flag that the work checks after every batch: the thread stops at the next batch boundary
(what was written stays written; a reindex retires its half-built index and the live one
keeps serving), then ``CancelledError`` goes on up. Progress is published as ``progress``
events after every batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ember.auth.scopes import Scope
from ember.errors import EmberError, PathNotAllowed
from ember.jobs.context import JobContext
from ember.jobs.kinds import JobKind
from ember.jobs.protocol import BulkRunner
from ember.memory.documents import DocumentIn, source_documents
from ember.memory.extract import SourceDocument
from ember.memory.ingest import IngestProgress
from ember.memory.reindex import ReindexProgress
from ember.memory.service import MemoryService
from ember.memory.sources import count_documents, list_files, read_documents

__all__ = ["IngestInput", "ReindexInput", "allowed_path", "memory_kinds"]

T = TypeVar("T")


class _Stopped(Exception):
    """Raised inside the worker thread at a batch boundary after a cancel."""


class IngestInput(BaseModel):
    """Input of an ``ingest`` job: ``documents`` in the request, or a ``path`` the server
    reads (under ``memory.ingest_roots``) with the bulk pipeline on the cluster."""

    model_config = ConfigDict(extra="forbid")

    collection: str = Field(min_length=1, max_length=128)
    documents: list[DocumentIn] | None = Field(None, min_length=1, max_length=10000)
    path: str | None = Field(
        None,
        min_length=1,
        max_length=4096,
        description="A file or directory on the server, read by the bulk pipeline.",
    )
    create: bool = Field(False, description="Create the collection if it does not exist.")

    @model_validator(mode="after")
    def _one_source(self) -> IngestInput:
        if (self.documents is None) == (self.path is None):
            raise ValueError("give exactly one of documents and path")
        return self


def allowed_path(path: str, roots: Sequence[str]) -> Path:
    """``path`` resolved, once it is inside one of ``roots`` (symbolic links followed).

    :raises PathNotAllowed: it is not (or ``roots`` is empty); the message names the setting,
        never the configured directories.
    """
    resolved = Path(path).resolve()
    for root in roots:
        if resolved.is_relative_to(Path(root).resolve()):
            return resolved
    where = "" if roots else "; none are configured"
    raise PathNotAllowed(
        f"{path} is outside the directories ingest jobs may read (memory.ingest_roots{where})"
    )


class ReindexInput(BaseModel):
    """Input of a ``reindex`` job."""

    model_config = ConfigDict(extra="forbid")

    collection: str = Field(min_length=1, max_length=128)


async def _in_thread(
    context: JobContext, work: Callable[[Callable[[dict[str, Any]], None]], T]
) -> T:
    """Run ``work(report)`` in a thread; ``report(data)`` publishes a progress event and is
    where a cancel stops the thread."""
    loop = asyncio.get_running_loop()
    stop = threading.Event()

    def report(data: dict[str, Any]) -> None:
        asyncio.run_coroutine_threadsafe(context.emit("progress", data), loop)
        if stop.is_set():
            raise _Stopped

    future = asyncio.ensure_future(asyncio.to_thread(work, report))
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        stop.set()
        with contextlib.suppress(_Stopped):
            await future
        raise


def memory_kinds(
    memory: Callable[[], MemoryService],
    *,
    bulk: BulkRunner | None = None,
    ingest_roots: Sequence[str] = (),
) -> list[JobKind]:
    """The kinds over the memory plane ``memory()`` returns (built on first use). With
    ``bulk``, ``path`` ingests and reindexes run on its pipelines; without, a ``path`` ingest
    reads the files in the worker's process and reindex runs there too."""

    async def ingest(context: JobContext, payload: IngestInput) -> dict[str, Any]:
        root = None if payload.path is None else allowed_path(payload.path, ingest_roots)

        def work(report: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
            service = memory().in_workspace(context.job.workspace)
            if payload.create:
                service.collections.ensure(
                    payload.collection, embedding_model=service.embedder.model_id
                )
            if root is not None and bulk is not None:
                result = bulk.ingest(
                    service, payload.collection, root, lambda state: report(asdict(state))
                )
            else:
                files = [] if root is None else list_files(root)
                items: Iterable[SourceDocument | EmberError] = (
                    read_documents(files, root)
                    if root is not None
                    else source_documents(payload.documents or [])
                )
                total = (
                    count_documents(files, root)
                    if root is not None
                    else len(payload.documents or [])
                )

                def progress(state: IngestProgress) -> None:
                    report({**asdict(state), "total": total})

                result = service.ingest(payload.collection, items, progress)
            return {
                "collection": payload.collection,
                "created": result.count("created"),
                "updated": result.count("updated"),
                "skipped": result.count("unchanged", "duplicate"),
                "failed": result.count("failed"),
                "chunks": result.chunks,
                "seconds": round(result.seconds, 3),
                "index_error": result.index_error,
                "documents": [asdict(outcome) for outcome in result.outcomes],
            }

        return await _in_thread(context, work)

    async def reindex(context: JobContext, payload: ReindexInput) -> dict[str, Any]:
        def work(report: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
            def progress(state: ReindexProgress) -> None:
                report(asdict(state))

            service = memory().in_workspace(context.job.workspace)
            if bulk is not None:
                return asdict(bulk.reindex(service, payload.collection, progress))
            return asdict(service.reindex(payload.collection, progress))

        return await _in_thread(context, work)

    return [
        JobKind(
            "ingest",
            IngestInput,
            ingest,
            "Ingest documents into a collection (every document gets an outcome).",
            scopes=frozenset({Scope.MEMORY_WRITE}),
        ),
        JobKind(
            "reindex",
            ReindexInput,
            reindex,
            "Re-embed a collection with the configured model and swap in a new index.",
            scopes=frozenset({Scope.MEMORY_WRITE}),
        ),
    ]
