"""Hybrid retrieval: dense and keyword candidates, fused, filtered inside both, top-k.

Dense candidates come from the collection's live vector index, keyword candidates from the
database's full-text search, the two searched at the same time (the keyword query runs in a
worker thread while the query is embedded); the metadata filter is applied inside each
candidate search. Candidates whose chunk was retired meanwhile are dropped before fusion.
Fusion is weighted reciprocal rank fusion (``rrf``: ``Σ w / (k + rank)``) or a weighted sum of
min-max-normalized scores (``relative``). With ``per_document`` each candidate list is first
reduced to its best chunk per document, and a document found by both lists is represented by
its best dense chunk. Optional MMR re-ranks the fused list for diversity
using the stored chunk vectors.

Each search is one span of the retriever's ``tracer``, ``retrieval {collection}``
(``gen_ai.operation.name: retrieval``, ``gen_ai.data_source.id`` and ``ember.collection``
both the collection, ``ember.search.mode``, ``ember.search.k``, ``ember.search.hits``), with
children ``dense`` (embedding the query and the vector search) and ``keyword`` (parented
explicitly, as it runs in the worker thread), each with ``ember.candidates``, and, in hybrid
mode, ``fusion`` (``ember.search.fusion``). Neither the query nor chunk text is recorded.
The time of each answered search is observed in ``ember_memory_search_duration_seconds``.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

import numpy as np
from opentelemetry import context as otel_context
from opentelemetry.context import Context
from opentelemetry.trace import NoOpTracer, Tracer

from ember.errors import ReindexRequired
from ember.filters import Filter
from ember.memory.indexes import IndexManager
from ember.observability.metrics import Metrics, NoMetrics
from ember.observability.tracing import span
from ember.providers.protocol import Embedder
from ember.storage.protocol import ChunkStore, CollectionRepository
from ember.storage.records import ChunkRecord

__all__ = ["Fusion", "Mode", "Retriever", "SearchHit", "SearchSettings"]

Mode = Literal["hybrid", "dense", "keyword"]
Fusion = Literal["rrf", "relative"]


@dataclass(frozen=True)
class SearchSettings:
    """How candidates are gathered and fused (defaults documented in configuration)."""

    candidates: int = 100
    fusion: Fusion = "relative"
    rrf_k: int = 60
    dense_weight: float = 1.0
    keyword_weight: float = 1.0


@dataclass(frozen=True)
class SearchHit:
    """One result: the chunk, its fused score and where it ranked in each candidate list
    (1-based; ``None`` when that list did not have it)."""

    chunk: ChunkRecord
    score: float
    dense_rank: int | None
    keyword_rank: int | None
    dense_score: float | None
    keyword_score: float | None


def _best_per_document(
    hits: list[tuple[int, float]], documents: dict[int, str]
) -> list[tuple[int, float]]:
    seen: set[str] = set()
    kept = []
    for chunk_id, score in hits:
        document = documents.get(chunk_id)
        if document is not None and document not in seen:
            seen.add(document)
            kept.append((chunk_id, score))
    return kept


def _normalized(hits: list[tuple[int, float]]) -> dict[int, float]:
    if not hits:
        return {}
    scores = [score for _, score in hits]
    low, high = min(scores), max(scores)
    span = high - low
    return {chunk: (score - low) / span if span > 0 else 1.0 for chunk, score in hits}


class Retriever:
    """Searches one collection at a time; each search is a span of ``tracer`` (none without
    one), and its time is observed in ``metrics``."""

    def __init__(
        self,
        collections: CollectionRepository,
        store: ChunkStore,
        indexes: IndexManager,
        embedders: dict[str, Embedder],
        settings: SearchSettings | None = None,
        *,
        tracer: Tracer | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._collections = collections
        self._store = store
        self._indexes = indexes
        self._embedders = embedders
        self.settings = settings or SearchSettings()
        self._tracer = tracer or NoOpTracer()
        self._metrics: Metrics = metrics or NoMetrics()
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="ember-keyword")

    def with_collections(self, collections: CollectionRepository) -> Retriever:
        """This retriever over ``collections`` (another workspace's view), sharing
        everything else (its tracer included)."""
        clone = copy.copy(self)
        clone._collections = collections
        return clone

    def close(self) -> None:
        """Stop the thread that runs keyword searches beside the dense ones."""
        self._pool.shutdown(wait=False)

    def search(
        self,
        collection: str,
        query: str,
        k: int = 10,
        *,
        where: Filter | None = None,
        mode: Mode = "hybrid",
        per_document: bool = False,
        mmr_lambda: float | None = None,
        settings: SearchSettings | None = None,
    ) -> list[SearchHit]:
        """The ``k`` best chunks for ``query``, best first.

        :raises CollectionNotFound: no such collection.
        :raises InvalidFilter: ``where`` uses a field or value the backends cannot test.
        :raises ReindexRequired: the live index's model is not one of the embedders.
        """
        attributes = {
            "gen_ai.operation.name": "retrieval",
            "gen_ai.data_source.id": collection,
            "ember.collection": collection,
            "ember.search.mode": mode,
            "ember.search.k": k,
        }
        started = time.perf_counter()
        with span(self._tracer, f"retrieval {collection}", attributes=attributes) as current:
            hits = self._search(
                collection,
                query,
                k,
                where=where,
                mode=mode,
                per_document=per_document,
                mmr_lambda=mmr_lambda,
                settings=settings,
            )
            current.set_attribute("ember.search.hits", len(hits))
        elapsed = time.perf_counter() - started
        self._metrics.observe("ember_memory_search_duration_seconds", elapsed, mode=mode)
        return hits

    def _search(
        self,
        collection: str,
        query: str,
        k: int,
        *,
        where: Filter | None,
        mode: Mode,
        per_document: bool,
        mmr_lambda: float | None,
        settings: SearchSettings | None,
    ) -> list[SearchHit]:
        chosen = settings or self.settings
        record = self._collections.get(collection)
        depth = max(chosen.candidates, k)
        keyword_search = None
        if mode != "dense":
            keyword_search = self._pool.submit(
                self._keyword, otel_context.get_current(), record.id, query, depth, where
            )
        dense: list[tuple[int, float]] = []
        model_id = None
        try:
            if mode != "keyword":
                with span(self._tracer, "dense") as current:
                    live = self._indexes.current(record.id)
                    if live is not None:
                        index_record, index = live
                        model_id = index_record.model_id
                        vector = self._embedder(model_id, collection).embed_query(query)
                        found = index.search(vector, depth, where)
                        dense = [(hit.id, hit.score) for hit in found]
                    current.set_attribute("ember.candidates", len(dense))
        except BaseException:
            if keyword_search is not None:
                keyword_search.cancel()
            raise
        keyword = keyword_search.result() if keyword_search is not None else []
        owners = self._store.owners([c for c, _ in dense] + [c for c, _ in keyword])
        dense = [hit for hit in dense if hit[0] in owners]
        if per_document:
            dense = _best_per_document(dense, owners)
            keyword = _best_per_document(keyword, owners)
            representative = {owners[cid]: cid for cid, _ in reversed(dense)}
            keyword = [(representative.get(owners[cid], cid), score) for cid, score in keyword]
        fused = self._fuse(dense, keyword, chosen, mode)
        ranked = sorted(fused.items(), key=lambda item: -item[1])
        if mmr_lambda is not None and model_id is not None:
            ranked = self._mmr(ranked[:depth], model_id, k, mmr_lambda)
        ranked = ranked[:k]
        chunks = self._store.chunks([cid for cid, _ in ranked], live_only=True)
        dense_rank = {cid: rank for rank, (cid, _) in enumerate(dense, start=1)}
        keyword_rank = {cid: rank for rank, (cid, _) in enumerate(keyword, start=1)}
        dense_score, keyword_score = dict(dense), dict(keyword)
        return [
            SearchHit(
                chunk=chunks[cid],
                score=score,
                dense_rank=dense_rank.get(cid),
                keyword_rank=keyword_rank.get(cid),
                dense_score=dense_score.get(cid),
                keyword_score=keyword_score.get(cid),
            )
            for cid, score in ranked
            if cid in chunks
        ]

    def _keyword(
        self, parent: Context, collection_id: str, query: str, depth: int, where: Filter | None
    ) -> list[tuple[int, float]]:
        with span(self._tracer, "keyword", context=parent) as current:
            hits = self._store.keyword_search(collection_id, query, depth, where)
            current.set_attribute("ember.candidates", len(hits))
            return hits

    def _embedder(self, model_id: str, collection: str) -> Embedder:
        embedder = self._embedders.get(model_id)
        if embedder is None:
            known = ", ".join(sorted(self._embedders)) or "none"
            raise ReindexRequired(
                f"collection {collection!r} is indexed with {model_id}, which this ember does "
                f"not run (configured: {known}); run `ember collections reindex {collection}`"
            )
        return embedder

    def _fuse(
        self,
        dense: list[tuple[int, float]],
        keyword: list[tuple[int, float]],
        settings: SearchSettings,
        mode: Mode,
    ) -> dict[int, float]:
        if mode == "dense":
            return dict(dense)
        if mode == "keyword":
            return dict(keyword)
        fused: dict[int, float] = {}
        weighted = ((dense, settings.dense_weight), (keyword, settings.keyword_weight))
        with span(self._tracer, "fusion", attributes={"ember.search.fusion": settings.fusion}):
            if settings.fusion == "rrf":
                for hits, weight in weighted:
                    for rank, (cid, _) in enumerate(hits, start=1):
                        fused[cid] = fused.get(cid, 0.0) + weight / (settings.rrf_k + rank)
            else:
                for hits, weight in weighted:
                    for cid, score in _normalized(hits).items():
                        fused[cid] = fused.get(cid, 0.0) + weight * score
        return fused

    def _mmr(
        self, ranked: Sequence[tuple[int, float]], model_id: str, k: int, lam: float
    ) -> list[tuple[int, float]]:
        vectors = self._store.vectors([cid for cid, _ in ranked], model_id)
        pool = [(cid, score) for cid, score in ranked if cid in vectors]
        relevance = _normalized(list(pool))
        chosen: list[tuple[int, float]] = []
        while pool and len(chosen) < k:
            best, best_value = 0, -np.inf
            for position, (cid, _) in enumerate(pool):
                similarity = max(
                    (float(vectors[cid] @ vectors[other]) for other, _ in chosen), default=0.0
                )
                value = lam * relevance[cid] - (1 - lam) * similarity
                if value > best_value:
                    best, best_value = position, value
            chosen.append(pool.pop(best))
        return chosen
