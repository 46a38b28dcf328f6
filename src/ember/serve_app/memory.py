"""``/collections/{name}/documents``, ``/search``, ``/context``, ``/export`` and ``/import``:
the memory plane over HTTP.

Ingest and import need ``memory:write``; search, context and export ``memory:read``. Every
route sees only the caller's workspace (another workspace's collection is 404). An ingest
request over a :class:`~ember.memory.documents.DocumentLimits` limit is refused whole before
any work.

Export and import move a collection as the JSON lines of :mod:`ember.memory.transfer`
(``application/x-ndjson``; ``ember collections export`` writes the same lines gzipped). An
import makes a new collection, named by the path, as ``ember collections import --as`` does:
all or nothing, 409 ``collection_exists`` when the name is taken, 422
``invalid_export_line`` (or ``dimension_mismatch``) naming the first bad ``line``. Its body
is held to ``server.max_body_bytes`` by the front door (413 ``request_too_large``); each
import is audited as ``collection.import``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from ember.auth import Principal, Scope
from ember.errors import (
    CollectionExists,
    CollectionNotFound,
    DimensionMismatch,
    InvalidExportLine,
    ReindexRequired,
    RequestTooLarge,
    UnsupportedMediaType,
    ValidationFailed,
)
from ember.memory.documents import DocumentIn, DocumentLimits, source_documents
from ember.memory.ingest import DocumentOutcome
from ember.memory.retrieval import SearchHit
from ember.memory.service import MemoryService
from ember.memory.transfer import export_lines, import_lines
from ember.serve_app.auth import require
from ember.serve_app.openapi import problem_responses
from ember.storage import AuditLog, audited

__all__ = ["NDJSON", "memory_router"]

NDJSON = "application/x-ndjson"
"""The media type of a collection export."""

Reader = Annotated[Principal, Depends(require(Scope.MEMORY_READ))]
Writer = Annotated[Principal, Depends(require(Scope.MEMORY_WRITE))]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IngestIn(_Strict):
    documents: list[DocumentIn] = Field(min_length=1, max_length=10000)


class OutcomeOut(BaseModel):
    source: str
    status: Literal["created", "updated", "unchanged", "duplicate", "failed"]
    document_id: str | None
    version: int | None
    chunks: int
    duplicate_of: str | None
    error_code: str | None
    error: str | None

    @classmethod
    def of(cls, outcome: DocumentOutcome) -> OutcomeOut:
        return cls(**asdict(outcome))


class IngestOut(BaseModel):
    collection: str
    created: int
    updated: int
    skipped: int
    failed: int
    chunks: int
    seconds: float
    index_error: str | None = Field(
        None,
        description="Set when the written documents could not be put in the vector index: "
        "they are stored and found by keyword search; a reindex puts them in the index.",
    )
    documents: list[OutcomeOut]


class SearchIn(_Strict):
    query: str = Field(min_length=1, max_length=10000)
    k: int = Field(10, ge=1, le=1000)
    filter: dict[str, Any] | None = Field(None, description="Metadata filter (docs/memory.md).")
    mode: Literal["hybrid", "dense", "keyword"] = "hybrid"
    per_document: bool = Field(False, description="At most one chunk per document.")
    mmr_lambda: float | None = Field(None, ge=0, le=1, description="Re-rank for diversity.")
    explain: bool = Field(False, description="Add each hit's dense and keyword ranks.")


class Explanation(BaseModel):
    dense_rank: int | None
    keyword_rank: int | None
    dense_score: float | None
    keyword_score: float | None
    fused_score: float


class HitOut(BaseModel):
    chunk_id: int
    document_id: str
    source: str
    version: int
    title: str | None
    text: str
    char_start: int
    char_end: int
    score: float
    metadata: dict[str, Any]
    explain: Explanation | None = None

    @classmethod
    def of(cls, hit: SearchHit, explain: bool) -> HitOut:
        chunk = hit.chunk
        return cls(
            chunk_id=chunk.id,
            document_id=chunk.document_id,
            source=chunk.source,
            version=chunk.version,
            title=chunk.title,
            text=chunk.text,
            char_start=chunk.char_start,
            char_end=chunk.char_end,
            score=hit.score,
            metadata=chunk.metadata,
            explain=Explanation(
                dense_rank=hit.dense_rank,
                keyword_rank=hit.keyword_rank,
                dense_score=hit.dense_score,
                keyword_score=hit.keyword_score,
                fused_score=hit.score,
            )
            if explain
            else None,
        )


class SearchOut(BaseModel):
    hits: list[HitOut]


class ContextIn(_Strict):
    query: str = Field(min_length=1, max_length=10000)
    budget_tokens: int = Field(ge=16, le=1_000_000)
    k: int = Field(20, ge=1, le=1000)
    filter: dict[str, Any] | None = None


class PackedOut(BaseModel):
    citation: int
    chunk_id: int
    document_id: str
    source: str
    version: int
    char_start: int
    char_end: int
    tokens: int
    score: float
    text: str = Field(description="The chunk's text, as the pack holds it.")


class DroppedOut(BaseModel):
    chunk_id: int
    source: str
    reason: Literal["near_duplicate", "over_budget"]
    tokens: int
    duplicate_of: int | None


class ContextOut(BaseModel):
    text: str
    budget_tokens: int
    tokens_used: int
    tokenizer: str
    chunks: list[PackedOut]
    dropped: list[DroppedOut]


class ImportOut(BaseModel):
    collection: str = Field(description="The new collection.")
    added: int = Field(description="Documents written, with their chunks and vectors.")


_EXPORTED: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The collection's export: a header line, then one line per document.",
        "content": {NDJSON: {"schema": {"type": "string"}}},
    }
}
_IMPORT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The lines of an export (`GET /collections/{name}/export`).",
        "content": {NDJSON: {"schema": {"type": "string"}}},
    }
}


def _lines(body: bytes) -> Iterator[str]:
    """``body``'s lines, each decoded on its own, so a line that is not UTF-8 is named."""
    for raw in body.splitlines(keepends=True):
        yield raw.decode("utf-8")


def memory_router(
    memory: MemoryService, limits: DocumentLimits | None = None, *, audit: AuditLog
) -> APIRouter:
    """Routes over ``memory``; ingest requests are held to ``limits`` (``None``: none);
    imports are written to ``audit``."""
    router = APIRouter(
        prefix="/collections/{name}",
        tags=["memory"],
        responses=problem_responses(CollectionNotFound, ReindexRequired),
    )

    @router.post("/documents", response_model=IngestOut)
    def ingest_documents(name: str, body: IngestIn, principal: Writer) -> IngestOut:
        """Ingest documents; every document gets an outcome, failures do not stop the rest."""
        items = source_documents(body.documents, limits)
        report = memory.in_workspace(principal.workspace).ingest(name, items)
        return IngestOut(
            collection=name,
            created=report.count("created"),
            updated=report.count("updated"),
            skipped=report.count("unchanged", "duplicate"),
            failed=report.count("failed"),
            chunks=report.chunks,
            seconds=round(report.seconds, 3),
            index_error=report.index_error,
            documents=[OutcomeOut.of(o) for o in report.outcomes],
        )

    @router.post("/search", response_model=SearchOut)
    def search(name: str, body: SearchIn, principal: Reader) -> SearchOut:
        """Hybrid (or dense, or keyword) search with filters applied inside both searches."""
        hits = memory.in_workspace(principal.workspace).search(
            name,
            body.query,
            body.k,
            where=memory.parse_filter(body.filter),
            mode=body.mode,
            per_document=body.per_document,
            mmr_lambda=body.mmr_lambda,
        )
        return SearchOut(hits=[HitOut.of(hit, body.explain) for hit in hits])

    @router.post("/context", response_model=ContextOut)
    def context(name: str, body: ContextIn, principal: Reader) -> ContextOut:
        """The best chunks for ``query`` packed into ``budget_tokens``, with citations."""
        pack, _ = memory.in_workspace(principal.workspace).context(
            name, body.query, body.budget_tokens, k=body.k, where=memory.parse_filter(body.filter)
        )
        return ContextOut(
            text=pack.text,
            budget_tokens=pack.budget,
            tokens_used=pack.tokens_used,
            tokenizer=pack.tokenizer,
            chunks=[PackedOut(**asdict(c)) for c in pack.chunks],
            dropped=[DroppedOut(**asdict(d)) for d in pack.dropped],
        )

    @router.get(
        "/export",
        response_class=StreamingResponse,
        responses=_EXPORTED,
    )
    def export_collection(name: str, principal: Reader) -> StreamingResponse:
        """The collection as JSON lines, sent as a file ``<name>.jsonl`` as it is read: its
        current documents with their chunks and vectors (what ``/import`` takes)."""
        plane = memory.in_workspace(principal.workspace)
        lines = export_lines(plane.collections, plane.store, plane.indexes, name)
        return StreamingResponse(
            lines,
            media_type=NDJSON,
            headers={"Content-Disposition": f'attachment; filename="{name}.jsonl"'},
        )

    @router.post(
        "/import",
        status_code=201,
        response_model=ImportOut,
        openapi_extra=_IMPORT_BODY,
        responses=problem_responses(
            CollectionExists,
            InvalidExportLine,
            DimensionMismatch,
            UnsupportedMediaType,
            RequestTooLarge,
            ValidationFailed,
        ),
    )
    async def import_collection(name: str, principal: Writer, request: Request) -> ImportOut:
        """Import an export (``Content-Type: application/x-ndjson``) into a new collection
        ``name``, no re-embedding; all or nothing."""
        media = request.headers.get("content-type", "").partition(";")[0].strip().lower()
        if media != NDJSON:
            raise UnsupportedMediaType(
                f"send the export as Content-Type: {NDJSON}, not {media or 'no type'!r}",
                extra={"param": "Content-Type"},
            )
        body = await request.body()
        plane = memory.in_workspace(principal.workspace)
        rid = getattr(request.state, "request_id", None)

        def work() -> tuple[str, int]:
            with audited(
                audit,
                principal.name,
                "collection.import",
                f"collection:{name}",
                request_id=rid,
                workspace=principal.workspace,
            ) as draft:
                created, count = import_lines(
                    plane.collections, plane.store, plane.indexes, _lines(body), name
                )
                draft.detail["documents"] = count
            return created, count

        created, count = await run_in_threadpool(work)
        return ImportOut(collection=created, added=count)

    return router
