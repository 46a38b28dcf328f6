"""Bulk ingest on Ray Data: read → prepare → embed in an actor pool → write.

The stages, over one collection:

1. **read**: the driver lists the files and cuts them into parts (a whole file, or a byte
   range of a JSONL corpus on line boundaries); each part is one block.
2. **prepare** (``map_batches(_Preparer)``, an actor pool): read the part, extract, normalize,
   hash, and chunk; a document whose content the collection already holds (a snapshot of its
   live versions taken at the start) skips chunking and embedding.
3. **embed** (``map_batches(EmbeddingWorker)``, an actor pool between ``embeddings.workers_min``
   and ``workers_max``, ``num_gpus`` per worker when the cluster has GPUs).
4. **write**, in the driver: the authoritative dedupe check against the database, then each
   document in its own transaction (chunks, embeddings, keyword rows), then the vector index.

Each document is committed on its own, so a run killed half-way and started again skips what
is written (by content hash) and finishes without duplicates. Files must be readable at the
same path on every node that runs a prepare worker (one machine, or a shared file system).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import ray.data

from ember.config import EmberConfig
from ember.errors import DimensionMismatch
from ember.memory.chunker import Chunker
from ember.memory.ingest import IngestProgress, IngestReport, IngestTally
from ember.memory.preparer import (
    DocumentOutcome,
    DocumentPreparer,
    embedding_text,
    known_from_snapshot,
    version_from_dict,
    version_to_dict,
)
from ember.memory.service import MemoryService
from ember.memory.sources import SourcePart, list_files, read_part, split_parts
from ember.pipelines._stages import embedded, quiet
from ember.services import build_tokenizer
from ember.storage.records import NewVersion
from ember.vectors.protocol import Vector

__all__ = ["BulkIngest"]


class _Preparer:
    """Parts in, one row per document out: ``position``, ``outcome`` (JSON of a
    :class:`DocumentOutcome` when nothing is to be written, else empty), ``version`` (JSON of
    the :class:`NewVersion` to write, else empty) and ``texts`` (what to embed per chunk)."""

    def __init__(self, config: EmberConfig, live: dict[str, str]) -> None:
        memory = config.memory
        chunker = Chunker(build_tokenizer(config), memory.chunk_tokens, memory.chunk_overlap)
        self._preparer = DocumentPreparer(chunker, memory.max_document_bytes)
        self._known = known_from_snapshot(live)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        positions: list[int] = []
        outcomes: list[str] = []
        versions: list[str] = []
        texts: list[list[str]] = []
        fields = ("path", "source", "offset", "length", "first_line", "documents", "root")
        for values in zip(*(batch[name] for name in fields), batch["base"], strict=True):
            path, source, offset, length, first_line, documents, root = values[:7]
            part = SourcePart(
                str(path),
                str(source),
                int(offset),
                int(length),
                int(first_line),
                int(documents),
                str(root),
            )
            for index, item in enumerate(read_part(part)):
                prepared = self._preparer.prepare(item, self._known)
                positions.append(int(values[7]) + index)
                if isinstance(prepared, DocumentOutcome):
                    outcomes.append(json.dumps(asdict(prepared)))
                    versions.append("")
                    texts.append([])
                else:
                    outcomes.append("")
                    versions.append(json.dumps(version_to_dict(prepared)))
                    texts.append([embedding_text(prepared.title, c.text) for c in prepared.chunks])
        column = np.empty(len(texts), dtype=object)
        column[:] = texts
        return {
            "position": np.array(positions, dtype=np.int64),
            "outcome": np.array(outcomes, dtype=object),
            "version": np.array(versions, dtype=object),
            "texts": column,
        }


class BulkIngest:
    """Runs the pipeline for one memory plane (whose database and indexes the driver writes).

    ``part_documents`` documents per part (the unit of reading and preparing),
    ``batch_documents`` per embedding call (default ``memory.ingest_batch_size``).
    ``no_progress_timeout_s`` fails a run whose workers cannot be scheduled instead of letting
    it wait forever (Ray Data's own watchdog; unset leaves Ray's default).
    """

    def __init__(
        self,
        config: EmberConfig,
        memory: MemoryService,
        *,
        part_documents: int = 256,
        batch_documents: int | None = None,
        no_progress_timeout_s: float | None = None,
    ) -> None:
        self._config = config
        self._memory = memory
        self._part_documents = part_documents
        self._batch = batch_documents or config.memory.ingest_batch_size
        self._timeout = no_progress_timeout_s

    def run(
        self,
        collection: str,
        root: Path,
        progress: Callable[[IngestProgress], None] | None = None,
    ) -> IngestReport:
        """Ingest every document under ``root`` into ``collection``; outcomes in input order.

        ``progress`` is called after every written batch; an exception it raises stops the
        run there (what was written stays written).

        :raises CollectionNotFound: no such collection.
        :raises ReindexRequired: the collection's live index uses another embedding model.
        :raises ValidationFailed: ``root`` does not exist.
        """
        started = time.perf_counter()
        ingestor = self._memory.ingestor
        collection_id = ingestor.check(collection)
        files = list_files(root)
        parts = split_parts(files, root, self._part_documents)
        report = IngestReport(collection)
        tally = IngestTally(report)
        positions: list[int] = []
        if parts:
            live = self._memory.store.live_hashes(collection_id)
            for batch in self._dataset(parts, live).iter_batches(
                batch_size=self._batch, batch_format="numpy"
            ):
                for position, outcome in self._write(collection_id, batch, report):
                    positions.append(position)
                    report.outcomes.append(outcome)
                if progress is not None:
                    progress(tally.progress())
        self._memory.indexes.flush(collection_id)
        order = sorted(range(len(positions)), key=positions.__getitem__)
        report.outcomes = [report.outcomes[i] for i in order]
        report.seconds = time.perf_counter() - started
        ingestor.record(report, collection_id)
        return report

    def _dataset(self, parts: list[SourcePart], live: dict[str, str]) -> ray.data.Dataset:
        quiet(self._timeout)
        items: list[dict[str, Any]] = []
        base = 0
        for part in parts:
            items.append({**asdict(part), "base": base})
            base += part.documents
        prepared = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
            _Preparer,
            fn_constructor_kwargs={"config": self._config, "live": live},
            batch_size=1,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(min_size=1, max_size=2),
            num_cpus=0.25,
        )
        return embedded(prepared, self._config, self._batch)

    def _write(
        self, collection_id: str, batch: Mapping[str, Any], report: IngestReport
    ) -> list[tuple[int, DocumentOutcome]]:
        """Write one batch of embedded rows; returns each row's (position, outcome)."""
        ingestor = self._memory.ingestor
        known = ingestor.known_by_store(collection_id)
        dim = self._memory.embedder.dim
        scratch = IngestReport(report.collection)
        positions: list[int] = []
        pending: list[tuple[int, NewVersion, Vector]] = []
        columns = ("position", "outcome", "version", "vectors")
        rows = zip(*(batch[name] for name in columns), strict=True)
        for position, outcome, version_json, blob in rows:
            positions.append(int(position))
            if outcome:
                scratch.outcomes.append(DocumentOutcome(**json.loads(outcome)))
                continue
            version = version_from_dict(json.loads(version_json))
            skipped = known(version.source, version.content_hash)
            vectors = np.frombuffer(blob, dtype=np.float32)
            if skipped is not None:
                scratch.outcomes.append(skipped)
            elif vectors.size != len(version.chunks) * dim:
                error = DimensionMismatch(
                    f"{version.source}: got {vectors.size} floats for {len(version.chunks)} "
                    f"chunks of dimension {dim}"
                )
                scratch.outcomes.append(
                    DocumentOutcome(
                        version.source, "failed", error_code=error.code, error=str(error)
                    )
                )
            else:
                scratch.outcomes.append(DocumentOutcome(version.source, "failed"))
                pending.append((len(scratch.outcomes) - 1, version, vectors.reshape(-1, dim)))
        if pending:
            ingestor.write(collection_id, pending, scratch)
        report.index_error = report.index_error or scratch.index_error
        return list(zip(positions, scratch.outcomes, strict=True))
