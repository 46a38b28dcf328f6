"""Retrieval quality, ingest throughput and query latency on BEIR SciFact, in one run.

Ingests the 5,183 SciFact abstracts through ember's real pipeline (extract, hash, chunk,
embed with the bundled all-MiniLM-L6-v2, write to SQLite with FTS5, index in FAISS), then runs
the 300 judged test queries. Reports:

- nDCG@10 and Recall@100 for keyword, dense and hybrid search (document level: each
  document counts once, through its best chunk), for the default configuration and, for
  reference, other fusion settings;
- ingest throughput as a ratio to the raw encoder on the same passages (the texts ember
  embedded), measured in the same run: the corpus is ingested in slices, each followed by the
  raw encoder on every ``--encoder-every``-th passage of that slice, so noise on a shared
  machine falls on both alike;
- hybrid query latency p50/p99 as a ratio to one query embedding, measured in the same run.

    .venv/bin/python benchmarks/retrieval_scifact.py [--data ../shared/data/scifact]

The data is read where it lies; nothing is copied into the repository.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

try:
    from benchmarks._stats import percentile
except ModuleNotFoundError:  # run as ``python benchmarks/X.py``: this folder is on sys.path
    from _stats import percentile

os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parent.parent


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open() as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _qrels(path: Path) -> dict[str, dict[str, int]]:
    judged: dict[str, dict[str, int]] = defaultdict(dict)
    with path.open() as handle:
        next(handle)
        for line in handle:
            query, document, score = line.split()
            judged[query][document] = int(score)
    return judged


def ndcg_at(ranked: list[str], relevant: dict[str, int], k: int = 10) -> float:
    dcg = sum(relevant.get(doc, 0) / math.log2(i + 2) for i, doc in enumerate(ranked[:k]))
    ideal = sorted(relevant.values(), reverse=True)[:k]
    idcg = sum(rel / math.log2(i + 2) for i, rel in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def recall_at(ranked: list[str], relevant: dict[str, int], k: int = 100) -> float:
    hits = sum(1 for doc in ranked[:k] if relevant.get(doc, 0) > 0)
    return hits / max(1, sum(1 for rel in relevant.values() if rel > 0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "scifact")
    parser.add_argument(
        "--slices",
        type=int,
        default=8,
        help="ingest in this many slices, each followed by"
        " its encoder baseline, so machine noise touches both alike",
    )
    parser.add_argument(
        "--encoder-every", type=int, default=4, help="baseline: every n-th passage of a slice"
    )
    args = parser.parse_args()

    from ember.config import load_config
    from ember.memory.extract import beir_documents
    from ember.memory.ingest import embedding_text
    from ember.memory.retrieval import SearchSettings
    from ember.providers.sentence_transformers import SentenceTransformerEmbedder
    from ember.services import memory_plane
    from ember.storage import Database, Migrator
    from ember.storage.tables import Chunk

    corpus_bytes = (args.data / "corpus.jsonl").read_bytes()
    queries = {q["_id"]: q["text"] for q in _read_jsonl(args.data / "queries.jsonl")}
    qrels = _qrels(args.data / "qrels" / "test.tsv")

    home = Path(tempfile.mkdtemp(prefix="ember-scifact-"))
    config = load_config(None, {"EMBER_HOME": str(home)})
    database = Database.from_config(config)
    Migrator(database).upgrade()
    embedder = SentenceTransformerEmbedder().load()
    memory = memory_plane(config, database, embedder=(embedder, embedder.tokenizer()))
    memory.collections.create("scifact")

    documents = list(beir_documents(corpus_bytes))
    size = -(-len(documents) // args.slices)
    ingest_s = encoder_s = 0.0
    passages = sampled = 0
    last_chunk = 0
    for first in range(0, len(documents), size):
        started = time.perf_counter()
        report = memory.ingest("scifact", documents[first : first + size])
        ingest_s += time.perf_counter() - started
        failed = [o for o in report.outcomes if o.status == "failed"]
        assert not failed, failed[:3]
        passages += report.chunks
        texts = database.run(
            lambda s, after=last_chunk: [
                (row.id, embedding_text(row.title, row.text))
                for row in s.execute(
                    Chunk.__table__.select()
                    .with_only_columns(Chunk.id, Chunk.title, Chunk.text)
                    .where(Chunk.id > after)
                    .order_by(Chunk.id)
                )
            ]
        )
        last_chunk = texts[-1][0]
        sample = [text for _, text in texts[:: args.encoder_every]]
        started = time.perf_counter()
        embedder.embed_documents(sample)
        encoder_s += time.perf_counter() - started
        sampled += len(sample)
    encoder_rate = sampled / encoder_s
    ingest_rate = passages / ingest_s

    query_ids = sorted(qrels)
    for text in ["warm up", queries[query_ids[0]]]:
        embedder.embed_query(text)
    embed_ms = []
    for qid in query_ids:
        t0 = time.perf_counter()
        embedder.embed_query(queries[qid])
        embed_ms.append((time.perf_counter() - t0) * 1000)

    default = memory.retriever.settings
    variants: list[tuple[str, str, SearchSettings]] = [
        ("keyword (FTS5 bm25, porter)", "keyword", default),
        ("dense (MiniLM, FAISS flat)", "dense", default),
        (
            f"hybrid default: {default.fusion}, dense weight {default.dense_weight}, "
            f"keyword weight {default.keyword_weight}",
            "hybrid",
            default,
        ),
        (
            "hybrid: RRF k=60, equal weights",
            "hybrid",
            SearchSettings(fusion="rrf", dense_weight=1.0, keyword_weight=1.0),
        ),
        (
            "hybrid: RRF k=60, keyword weight 1.5",
            "hybrid",
            SearchSettings(fusion="rrf", dense_weight=1.0, keyword_weight=1.5),
        ),
        (
            "hybrid: normalized scores, equal weights",
            "hybrid",
            SearchSettings(fusion="relative", dense_weight=1.0, keyword_weight=1.0),
        ),
    ]
    results = []
    latency_ms: list[float] = []
    for label, mode, settings in variants:
        ndcg, recall = [], []
        for qid in query_ids:
            t0 = time.perf_counter()
            hits = memory.retriever.search(
                "scifact",
                queries[qid],
                100,
                mode=mode,
                per_document=True,  # type: ignore[arg-type]
                settings=settings,
            )
            if settings is default and mode == "hybrid":
                latency_ms.append((time.perf_counter() - t0) * 1000)
            ranked = [hit.chunk.source for hit in hits]
            ndcg.append(ndcg_at(ranked, qrels[qid]))
            recall.append(recall_at(ranked, qrels[qid]))
        results.append((label, statistics.mean(ndcg), statistics.mean(recall)))

    print(f"corpus: {len(documents)} documents, {passages} passages; queries: {len(query_ids)}")
    print("\n| configuration | nDCG@10 | Recall@100 |\n| --- | --- | --- |")
    for label, ndcg, recall in results:
        print(f"| {label} | {ndcg:.4f} | {recall:.4f} |")
    embed_p50 = statistics.median(embed_ms)
    p50, p99 = statistics.median(latency_ms), percentile(latency_ms, 0.99)
    print("\n| measure | value | baseline in the same run | ratio |\n| --- | --- | --- | --- |")
    print(
        f"| ingest throughput | {ingest_rate:.1f} passages/s ({ingest_s:.0f} s) "
        f"| raw encoder {encoder_rate:.1f} passages/s | {ingest_rate / encoder_rate:.2f}x |"
    )
    print(
        f"| hybrid query p50 | {p50:.1f} ms | one query embedding p50 {embed_p50:.1f} ms "
        f"| {p50 / embed_p50:.2f}x |"
    )
    print(
        f"| hybrid query p99 | {p99:.1f} ms | one query embedding p50 {embed_p50:.1f} ms "
        f"| {p99 / embed_p50:.2f}x |"
    )
    print(
        json.dumps(
            {
                "results": results,
                "ingest_passages_per_s": ingest_rate,
                "encoder_passages_per_s": encoder_rate,
                "hybrid_p50_ms": p50,
                "hybrid_p99_ms": p99,
                "embed_query_p50_ms": embed_p50,
                "passages": passages,
            }
        )
    )
    memory.close()
    database.dispose()


if __name__ == "__main__":
    main()
