"""Bulk ingest on Ray Data against the single-process ingest; shard scatter-gather search
against one unsharded index.

1. **Ingest.** The BEIR SciFact corpus (or its first ``--documents``) goes into an empty
   collection twice, each time in a fresh home: once through the single-process path
   (``MemoryService.ingest``, the embedding model in this process with torch's own threads),
   once through ``BulkIngest`` on a local Ray cluster of ``--cpus`` CPUs that is already up
   (as it is for ``ray job submit``). Both times count from the start of the ingest to the
   last document written, model loading included; the ratio is Ray over single-process.
2. **Search.** The collection's vectors are served by 1, 2 and 4 VectorShard actors (FAISS
   flat, rebuilt from the ``embeddings`` table) and searched with the first ``--queries``
   SciFact queries (top 10); per-query latencies are compared with one in-process FAISS
   flat index over the same vectors, in the same run, and the hits with its hits.

    .venv/bin/python benchmarks/ingest_ray.py [--data ../shared/data/scifact] [--documents N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

try:
    from benchmarks._stats import percentile
except ModuleNotFoundError:  # run as ``python benchmarks/X.py``: this folder is on sys.path
    from _stats import percentile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

REPO = Path(__file__).resolve().parent.parent


def _subset(data: Path, documents: int | None, folder: Path) -> Path:
    """The corpus file, or a copy of its first ``documents`` lines."""
    source = data / "corpus.jsonl"
    if documents is None:
        return source
    target = folder / "corpus.jsonl"
    with source.open(encoding="utf-8") as lines, target.open("w", encoding="utf-8") as out:
        for number, line in enumerate(lines):
            if number >= documents:
                break
            out.write(line)
    return target


def _plane(home: Path, **env: str) -> Any:
    from ember.config import load_config
    from ember.services import memory_plane
    from ember.storage import Database, Migrator

    config = load_config(None, {"EMBER_HOME": str(home), **env})
    database = Database.from_config(config)
    Migrator(database).upgrade()
    return config, database, memory_plane(config, database)


def ingest_single(corpus: Path, home: Path) -> dict[str, Any]:
    from ember.memory.sources import list_files, read_documents

    _, database, memory = _plane(home)
    memory.collections.create("scifact")
    started = time.perf_counter()
    report = memory.ingest("scifact", read_documents(list_files(corpus), corpus))
    seconds = time.perf_counter() - started
    memory.close()
    database.dispose()
    return {"seconds": seconds, "documents": report.count("created"), "chunks": report.chunks}


def ingest_ray(corpus: Path, home: Path) -> dict[str, Any]:
    from ember.pipelines import BulkIngest

    config, database, memory = _plane(home)
    memory.collections.create("scifact")
    started = time.perf_counter()
    report = BulkIngest(config, memory).run("scifact", corpus)
    seconds = time.perf_counter() - started
    memory.close()
    database.dispose()
    return {"seconds": seconds, "documents": report.count("created"), "chunks": report.chunks}


def _latencies(search: Any, queries: np.ndarray) -> tuple[list[float], list[list[int]]]:
    samples: list[float] = []
    results: list[list[int]] = []
    for vector in queries:
        started = time.perf_counter()
        hits = search(vector, 10)
        samples.append((time.perf_counter() - started) * 1000)
        results.append([hit.id for hit in hits])
    return samples, results


def search_shards(home: Path, data: Path, queries: int) -> list[dict[str, Any]]:
    from ember.actors.vector_shard import retire_shards, sharded_index_factory
    from ember.memory.indexes import IndexManager
    from ember.storage.indexes import SqlIndexRegistry
    from ember.vectors.faiss import FaissIndex

    config, database, memory = _plane(home)
    collection = memory.collections.get("scifact")
    model = memory.embedder.model_id
    texts = [
        json.loads(line)["text"]
        for line in (data / "queries.jsonl").read_text(encoding="utf-8").splitlines()[:queries]
    ]
    vectors = memory.embedder.embed_documents(texts)
    flat = FaissIndex(dim=memory.embedder.dim)
    for ids, batch, meta in memory.store.embeddings(collection.id, model):
        flat.upsert(ids, batch, meta)
    _latencies(flat.search, vectors[:20])
    baseline, expected = _latencies(flat.search, vectors)
    rows = [
        {
            "shards": "in-process",
            "p50_ms": percentile(baseline, 0.5),
            "p95_ms": percentile(baseline, 0.95),
        }
    ]
    for shards in (1, 2, 4):
        indexes = IndexManager(
            SqlIndexRegistry(database),
            memory.store,
            sharded_index_factory(config, shards),
            "faiss",
            {"kind": "flat"},
            retire=lambda record, n=shards: retire_shards(record.id, n),
        )
        indexes.rebuild(collection.id, model, memory.embedder.dim)
        _, index = indexes.current(collection.id)
        _latencies(index.search, vectors[:20])
        samples, found = _latencies(index.search, vectors)
        same = sum(a == b for a, b in zip(found, expected, strict=True)) / len(expected)
        rows.append(
            {
                "shards": shards,
                "p50_ms": percentile(samples, 0.5),
                "p95_ms": percentile(samples, 0.95),
                "p50_ratio": percentile(samples, 0.5) / rows[0]["p50_ms"],
                "same_top10": same,
            }
        )
        indexes.close()
    memory.close()
    database.dispose()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "scifact")
    parser.add_argument("--documents", type=int, default=None, help="first N documents only")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--cpus", type=int, default=2)
    args = parser.parse_args()

    import ray

    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        corpus = _subset(args.data, args.documents, root)
        single = ingest_single(corpus, root / "single")
        print(f"single-process: {json.dumps(single)}", flush=True)
        ray.init(address="local", num_cpus=args.cpus, include_dashboard=False)
        try:
            bulk = ingest_ray(corpus, root / "ray")
            print(f"ray data:       {json.dumps(bulk)}", flush=True)
            print(
                f"ingest ratio (ray / single-process): {bulk['seconds'] / single['seconds']:.3f}"
                f"  ({bulk['documents'] / bulk['seconds']:.1f} vs "
                f"{single['documents'] / single['seconds']:.1f} documents/s)",
                flush=True,
            )
            rows = search_shards(root / "ray", args.data, args.queries)
        finally:
            ray.shutdown()
    print("search, top 10 per query:")
    for row in rows:
        print(
            "  "
            + json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()})
        )
    print(f"median of p50 ratios: {statistics.median(r['p50_ratio'] for r in rows[1:]):.2f}")


if __name__ == "__main__":
    main()
