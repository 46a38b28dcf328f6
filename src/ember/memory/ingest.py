"""Ingest: extract → normalize → hash → dedupe → chunk → embed → write → index.

Documents are taken in batches so the embedder sees many chunks per call (it dominates the
cost). Each document is written in its own transaction — chunks, embeddings and keyword rows
together — so a failure loses nothing already accepted, and the report says which documents
failed and why. Re-ingesting a source with changed content writes a new version and retires
the old chunks; unchanged content is skipped, as is content identical to another live source.
"""

from __future__ import annotations

import copy
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ember.errors import EmberError, ReindexRequired
from ember.memory.chunker import Chunker
from ember.memory.extract import SourceDocument
from ember.memory.indexes import IndexManager
from ember.memory.preparer import (
    DocumentOutcome,
    DocumentPreparer,
    Known,
    Status,
    embedding_text,
)
from ember.observability.metrics import Metrics, NoMetrics
from ember.providers.protocol import Embedder
from ember.storage.chunks import chunk_metadata
from ember.storage.protocol import CollectionRepository, VersionStore
from ember.storage.records import NewVersion
from ember.vectors.protocol import Vector

__all__ = [
    "DocumentOutcome",
    "IngestProgress",
    "IngestReport",
    "IngestTally",
    "Ingestor",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngestProgress:
    """Running totals, reported after every batch."""

    done: int
    written: int
    skipped: int
    failed: int
    chunks: int


@dataclass
class IngestReport:
    """Every document's outcome, in input order, and the totals."""

    collection: str
    outcomes: list[DocumentOutcome] = field(default_factory=list)
    seconds: float = 0.0
    index_error: str | None = None
    """Set when written documents could not be put in the vector index, even by a rebuild:
    they are in the database and keyword search; ``rebuild`` puts them in the index."""

    def count(self, *statuses: Status) -> int:
        """How many documents ended in any of ``statuses``."""
        return sum(1 for outcome in self.outcomes if outcome.status in statuses)

    @property
    def chunks(self) -> int:
        """Chunks written in this run."""
        return sum(outcome.chunks for outcome in self.outcomes)


@dataclass
class _Pending:
    position: int
    version: NewVersion
    first_row: int = 0


class Ingestor:
    """Feeds documents into one collection's memory; each :meth:`ingest` is recorded in
    ``metrics`` (see :meth:`record`)."""

    def __init__(
        self,
        collections: CollectionRepository,
        store: VersionStore,
        indexes: IndexManager,
        embedder: Embedder,
        chunker: Chunker,
        *,
        batch_size: int = 64,
        max_document_bytes: int = 50 * 1024 * 1024,
        metrics: Metrics | None = None,
    ) -> None:
        self._collections = collections
        self._store = store
        self._indexes = indexes
        self._embedder = embedder
        self.preparer = DocumentPreparer(chunker, max_document_bytes)
        self._batch_size = batch_size
        self._metrics: Metrics = metrics or NoMetrics()

    def with_collections(self, collections: CollectionRepository) -> Ingestor:
        """This ingestor over ``collections`` (another workspace's view), sharing
        everything else."""
        clone = copy.copy(self)
        clone._collections = collections
        return clone

    def ingest(
        self,
        collection: str,
        documents: Iterable[SourceDocument | EmberError],
        progress: Callable[[IngestProgress], None] | None = None,
    ) -> IngestReport:
        """Ingest ``documents`` (an :class:`EmberError` in the stream is recorded as that
        position's failure) into ``collection``.

        :raises CollectionNotFound: no such collection.
        :raises ReindexRequired: the collection's live index uses another embedding model.
        """
        started = time.perf_counter()
        collection_id = self.check(collection)
        report = IngestReport(collection)
        tally = IngestTally(report)
        batch: list[_Pending] = []
        known = self.known_by_store(collection_id)
        for position, item in enumerate(documents):
            prepared = self.preparer.prepare(item, known)
            if isinstance(prepared, DocumentOutcome):
                report.outcomes.append(prepared)
            else:
                report.outcomes.append(DocumentOutcome(prepared.source, "failed"))
                batch.append(_Pending(position, prepared))
            if len(batch) >= self._batch_size:
                self._flush(collection_id, batch, report)
                batch = []
                if progress is not None:
                    progress(tally.progress())
        if batch:
            self._flush(collection_id, batch, report)
        self._indexes.flush(collection_id)
        if progress is not None:
            progress(tally.progress())
        report.seconds = time.perf_counter() - started
        self.record(report, collection_id)
        return report

    def record(self, report: IngestReport, collection_id: str) -> None:
        """Count ``report``'s documents by outcome (``ember_memory_documents_total``) and its
        chunks (``ember_memory_chunks_total``) and, when it wrote any, set
        ``ember_memory_index_vectors`` of its collection (``collection_id``) to its live
        index's size now."""
        for status, count in Counter(outcome.status for outcome in report.outcomes).items():
            self._metrics.inc("ember_memory_documents_total", count, outcome=status)
        if not report.count("created", "updated"):
            return
        self._metrics.inc("ember_memory_chunks_total", report.chunks)
        live = self._indexes.current(collection_id)
        if live is not None:
            self._metrics.set(
                "ember_memory_index_vectors", live[1].count(), collection=report.collection
            )

    def check(self, collection: str) -> str:
        """The id of ``collection``, once its live index is known to use this embedder's model.

        :raises CollectionNotFound: no such collection.
        :raises ReindexRequired: the collection's live index uses another embedding model.
        """
        record = self._collections.get(collection)
        index_record, _ = self._indexes.live(record.id, self._embedder.model_id, self._embedder.dim)
        if index_record.model_id != self._embedder.model_id:
            raise ReindexRequired(
                f"collection {collection!r} is indexed with {index_record.model_id}, not "
                f"{self._embedder.model_id}; run `ember collections reindex {collection}`"
            )
        return record.id

    def known_by_store(self, collection_id: str) -> Known:
        """The authoritative :data:`Known` check: the database's live versions, and content
        already seen by this check (so a corpus that repeats itself writes one copy)."""
        seen: dict[str, str] = {}

        def known(source: str, digest: str) -> DocumentOutcome | None:
            live = self._store.live_version(collection_id, source)
            if live is not None and live.content_hash == digest:
                return DocumentOutcome(source, "unchanged", live.document_id, live.version)
            twin = seen.get(digest) or self._store.source_with_content(collection_id, digest)
            if twin is not None and twin != source:
                return DocumentOutcome(source, "duplicate", duplicate_of=twin)
            seen[digest] = source
            return None

        return known

    def _flush(self, collection_id: str, batch: list[_Pending], report: IngestReport) -> None:
        texts: list[str] = []
        for pending in batch:
            pending.first_row = len(texts)
            title = pending.version.title
            texts.extend(embedding_text(title, chunk.text) for chunk in pending.version.chunks)
        try:
            vectors = self._embedder.embed_documents(texts)
        except Exception as exc:
            error = exc if isinstance(exc, EmberError) else EmberError(f"embedding failed: {exc}")
            if not isinstance(exc, EmberError):
                log.exception("embedding failed")
            for pending in batch:
                report.outcomes[pending.position] = DocumentOutcome(
                    pending.version.source, "failed", error_code=error.code, error=error.detail
                )
            return
        self.write(
            collection_id,
            [
                (p.position, p.version, vectors[p.first_row : p.first_row + len(p.version.chunks)])
                for p in batch
            ],
            report,
        )

    def write(
        self,
        collection_id: str,
        items: Sequence[tuple[int, NewVersion, Vector]],
        report: IngestReport,
    ) -> None:
        """Write each ``(position, version, chunk vectors)`` in its own transaction, set its
        outcome at ``position`` in ``report``, then update the vector index (healing it from
        the table if it refuses)."""
        _, index = self._indexes.live(collection_id, self._embedder.model_id, self._embedder.dim)
        new_ids: list[int] = []
        new_vectors: list[Vector] = []
        new_meta: list[dict[str, object]] = []
        retired: list[int] = []
        for position, version, vectors in items:
            try:
                written = self._store.write_version(
                    collection_id, version, vectors, self._embedder.model_id
                )
            except EmberError as exc:
                report.outcomes[position] = DocumentOutcome(
                    version.source, "failed", error_code=exc.code, error=exc.detail
                )
                continue
            new_ids.extend(written.chunk_ids)
            new_vectors.append(vectors)
            new_meta.extend([chunk_metadata(version)] * len(written.chunk_ids))
            retired.extend(written.retired_chunk_ids)
            report.outcomes[position] = DocumentOutcome(
                version.source,
                "created" if written.version == 1 else "updated",
                written.document_id,
                written.version,
                len(written.chunk_ids),
            )
        try:
            if retired:
                index.delete(retired)
            if new_ids:
                index.upsert(new_ids, np.ascontiguousarray(np.concatenate(new_vectors)), new_meta)
        except EmberError as exc:
            self._heal_index(collection_id, exc, report)

    def _heal_index(self, collection_id: str, exc: EmberError, report: IngestReport) -> None:
        """The rows are committed but the vector index refused them: rebuild it from the
        ``embeddings`` table, which holds them; if that fails too, say so in the report."""
        log.warning("vector index update failed; rebuilding", extra={"error": str(exc)})
        try:
            self._indexes.rebuild(collection_id, self._embedder.model_id, self._embedder.dim)
        except EmberError as again:
            report.index_error = f"{again.code}: {again.detail}"


class IngestTally:
    """Running totals of ``report``, counting each outcome once: call :meth:`progress` only
    when every outcome in the report is final (no document of it is still being written)."""

    def __init__(self, report: IngestReport) -> None:
        self._report = report
        self._seen = 0
        self._counts: Counter[str] = Counter()

    def progress(self) -> IngestProgress:
        """The totals so far, after counting the outcomes added since the last call."""
        for outcome in self._report.outcomes[self._seen :]:
            self._counts[outcome.status] += 1
            self._counts["chunks"] += outcome.chunks
        self._seen = len(self._report.outcomes)
        counts = self._counts
        return IngestProgress(
            done=self._seen,
            written=counts["created"] + counts["updated"],
            skipped=counts["unchanged"] + counts["duplicate"],
            failed=counts["failed"],
            chunks=counts["chunks"],
        )
