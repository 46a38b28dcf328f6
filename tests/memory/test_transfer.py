"""Export a collection and import it into a fresh ember: the same searches give the same
results."""

from __future__ import annotations

import base64
import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from ember.config import load_config
from ember.errors import BadRequest, CollectionExists, DimensionMismatch
from ember.memory.extract import SourceDocument
from ember.memory.service import MemoryService
from ember.services import memory_plane
from ember.storage import Database, Migrator
from tests.memory.test_memory import DOCS, load

pytestmark = pytest.mark.slow


def results(memory: MemoryService, collection: str) -> list[list[tuple[str, str, float | None]]]:
    """Sources, texts and scores of a fixed set of searches; keyword scores are left out
    because bm25 (SQLite) and ts_rank_cd (Postgres) score on different scales."""
    return [
        [
            (hit.chunk.source, hit.chunk.text, None if mode == "keyword" else round(hit.score, 5))
            for hit in memory.search(collection, query, 10, mode=mode)
        ]
        for query in ["lava", "moon tides", "yeast dough", "sleepy cats"]
        for mode in ("hybrid", "dense", "keyword")
    ]


def test_roundtrip_into_a_fresh_ember(
    memory: MemoryService, tmp_path: Path, embedder, tokenizer
) -> None:
    load(memory)
    memory.ingest("notes", [SourceDocument("cats.txt", b"Cats chase laser dots.")])
    path = tmp_path / "notes.ember.gz"
    assert memory.export("notes", path) == len(DOCS)

    home = tmp_path / "other"
    config = load_config(None, {"EMBER_HOME": str(home)})
    database = Database(f"sqlite:///{home / 'fresh.db'}")
    Migrator(database).upgrade()
    fresh = memory_plane(config, database, embedder=(embedder, tokenizer))
    try:
        assert fresh.import_(path) == ("notes", len(DOCS))
        assert results(fresh, "notes") == results(memory, "notes")
        hit = fresh.search("notes", "laser", 1)[0]
        assert hit.chunk.version == 1
        with pytest.raises(CollectionExists):
            fresh.import_(path)
        assert fresh.import_(path, name="copy") == ("copy", len(DOCS))
        same_order = [[hit[:2] for hit in hits] for hits in results(memory, "notes")]
        assert [[hit[:2] for hit in hits] for hits in results(fresh, "copy")] == same_order
    finally:
        fresh.close()
        database.dispose()


def test_import_rejects_other_files(memory: MemoryService, tmp_path: Path) -> None:
    plain = tmp_path / "plain.txt"
    plain.write_text("hello")
    with pytest.raises(BadRequest, match="cannot be read"):
        memory.import_(plain)
    wrong = tmp_path / "wrong.gz"
    with gzip.open(wrong, "wt") as out:
        out.write('{"format": "something-else"}\n')
    with pytest.raises(BadRequest, match="not an ember collection export"):
        memory.import_(wrong)
    assert [c.name for c in memory.collections.list()] == ["notes"]


def test_a_damaged_export_imports_nothing(memory: MemoryService, tmp_path: Path) -> None:
    load(memory)
    path = tmp_path / "notes.ember.gz"
    memory.export("notes", path)
    with gzip.open(path, "rt") as lines:
        header, *documents = lines.read().splitlines()
    row = json.loads(documents[-1])
    row["vectors"] = [base64.b64encode(np.zeros(8, np.float32).tobytes()).decode()]
    short = tmp_path / "short.ember.gz"
    with gzip.open(short, "wt") as out:
        out.write("\n".join([header, *documents[:-1], json.dumps(row)]) + "\n")
    with pytest.raises(DimensionMismatch, match="8 dims, header says 384"):
        memory.import_(short, name="short")
    truncated = tmp_path / "truncated.ember.gz"
    with gzip.open(truncated, "wt") as out:
        out.write("\n".join([header, documents[0], '{"source": "x"']) + "\n")
    with pytest.raises(BadRequest, match=r"truncated\.ember\.gz:3"):
        memory.import_(truncated, name="truncated")
    assert [c.name for c in memory.collections.list()] == ["notes"]
