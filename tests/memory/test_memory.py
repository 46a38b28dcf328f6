"""Ingest, hybrid retrieval, packing and index rebuilds with the real bundled model and FAISS,
on SQLite and Postgres."""

from __future__ import annotations

import numpy as np
import pytest

from ember.errors import CollectionNotFound, EmberError
from ember.filters import parse_filter
from ember.memory.extract import SourceDocument
from ember.memory.service import MemoryService
from ember.services import memory_plane
from tests.memory.test_extract import pdf_with_text

pytestmark = pytest.mark.slow

DOCS = {
    "cats.txt": ("Cats purr when they are content and sleep most of the day.", {"kind": "pet"}),
    "volcano.md": (
        "# Volcanoes\nMagma rises through the crust and erupts as lava at the surface.",
        {"kind": "geo", "year": 2021},
    ),
    "bread.html": (
        "<title>Baking</title><p>Yeast ferments sugar and the dough rises in the oven.</p>",
        {"kind": "food", "year": 2019},
    ),
    "tides.txt": ("The moon's gravity pulls the oceans and causes the tides.", {"kind": "geo"}),
}


def sources(hits) -> list[str]:
    return [hit.chunk.source for hit in hits]


def load(memory: MemoryService, names=DOCS) -> None:
    documents = [
        SourceDocument(name, DOCS[name][0].encode(), metadata=DOCS[name][1]) for name in names
    ]
    report = memory.ingest("notes", documents)
    assert report.count("created") == len(documents), report.outcomes


def test_ingest_then_hybrid_search_finds_the_right_document(memory: MemoryService) -> None:
    load(memory)
    hits = memory.search("notes", "molten rock coming out of a mountain", 3)
    assert sources(hits)[0] == "volcano.md"
    assert hits[0].dense_rank == 1
    hits = memory.search("notes", "tides", 2, mode="keyword")
    assert sources(hits) == ["tides.txt"]
    assert hits[0].keyword_rank == 1 and hits[0].dense_rank is None
    assert hits[0].chunk.title is None
    assert memory.search("notes", "baking", 1)[0].chunk.title == "Baking"


def test_filters_apply_inside_both_searches(memory: MemoryService) -> None:
    load(memory)
    where = parse_filter({"kind": "geo"})
    hits = memory.search("notes", "cats purr", 10, where=where)
    assert set(sources(hits)) == {"volcano.md", "tides.txt"}
    ranged = memory.search("notes", "rises", 10, where=parse_filter({"year": {"$gte": 2020}}))
    assert sources(ranged) == ["volcano.md"]
    assert memory.search("notes", "cats", 5, where=parse_filter({"kind": "none"})) == []


def test_reingest_unchanged_changed_and_duplicate(memory: MemoryService) -> None:
    load(memory, ["cats.txt"])
    same = memory.ingest(
        "notes",
        [
            SourceDocument(
                "cats.txt",
                b"Cats purr when they are content  and sleep most of the day.",
                metadata={"kind": "pet"},
            )
        ],
    )
    assert [o.status for o in same.outcomes] == ["unchanged"]
    twin = memory.ingest(
        "notes",
        [SourceDocument("copy.txt", DOCS["cats.txt"][0].encode(), metadata={"kind": "pet"})],
    )
    assert twin.outcomes[0].status == "duplicate"
    assert twin.outcomes[0].duplicate_of == "cats.txt"
    changed = memory.ingest(
        "notes", [SourceDocument("cats.txt", b"Cats hunt mice at night.", metadata={"kind": "pet"})]
    )
    assert changed.outcomes[0].status == "updated" and changed.outcomes[0].version == 2
    for mode in ("dense", "keyword"):
        hits = memory.search("notes", "purr content sleep", 5, mode=mode)
        assert all("purr" not in hit.chunk.text for hit in hits)
    assert memory.search("notes", "mice", 1)[0].chunk.version == 2


def test_a_bad_document_fails_alone(memory: MemoryService) -> None:
    documents: list[SourceDocument | EmberError] = [
        SourceDocument("good1.txt", b"Photosynthesis turns light into sugar."),
        SourceDocument("bad.bin", b"\x00\x01\x02binary"),
        SourceDocument("empty.txt", b"   "),
        SourceDocument("paper.pdf", pdf_with_text("Mitochondria make energy")),
        SourceDocument("good2.txt", b"Glaciers carve valleys over millennia."),
    ]
    report = memory.ingest("notes", documents)
    assert [o.status for o in report.outcomes] == [
        "created",
        "failed",
        "failed",
        "created",
        "created",
    ]
    assert [o.error_code for o in report.outcomes if o.error_code] == [
        "binary_document",
        "empty_document",
    ]
    assert sources(memory.search("notes", "mitochondria energy", 1)) == ["paper.pdf"]
    assert len(memory.search("notes", "valleys sugar", 10)) == 3


def test_long_documents_are_chunked_with_attribution(memory: MemoryService) -> None:
    text = " ".join(
        f"Paragraph {i} talks about topic number {i} in some detail." for i in range(40)
    )
    report = memory.ingest("notes", [SourceDocument("long.txt", text.encode())])
    assert report.outcomes[0].chunks > 3
    hit = memory.search("notes", "topic number 23", 1, mode="keyword")[0]
    assert text[hit.chunk.char_start : hit.chunk.char_end] == hit.chunk.text
    per_doc = memory.search("notes", "paragraph topic", 10, per_document=True)
    assert sources(per_doc) == ["long.txt"]


def test_mmr_prefers_diverse_hits(memory: MemoryService) -> None:
    near = "The quick brown fox jumps over the lazy dog near the river bank"
    memory.ingest(
        "notes",
        [
            SourceDocument("a.txt", near.encode()),
            SourceDocument("b.txt", (near + " today").encode()),
            SourceDocument("c.txt", b"A fox and a dog became friends by the water."),
        ],
    )
    plain = sources(memory.search("notes", "quick brown fox jumps", 2))
    diverse = sources(memory.search("notes", "quick brown fox jumps", 2, mmr_lambda=0.3))
    assert set(plain) == {"a.txt", "b.txt"}
    assert "c.txt" in diverse


def test_context_pack_fits_budget_cites_and_drops_duplicates(memory: MemoryService) -> None:
    load(memory)
    memory.ingest(
        "notes",
        [
            SourceDocument(
                "tides-copy.txt", b"The moon's gravity pulls the oceans and causes the tides!!"
            )
        ],
    )
    pack, hits = memory.context("notes", "moon gravity oceans tides", budget=60, k=5)
    assert pack.tokens_used <= 60
    assert pack.tokens_used == memory.packer._tokenizer.count(pack.text)
    assert pack.chunks[0].citation == 1 and pack.text.startswith("[1] ")
    assert pack.chunks[0].source in {"tides.txt", "tides-copy.txt"}
    reasons = {d.reason for d in pack.dropped}
    assert "near_duplicate" in reasons
    assert len(pack.chunks) + len(pack.dropped) == len(hits)
    small, _ = memory.context("notes", "moon gravity oceans tides", budget=16, k=5)
    assert small.chunks == [] and small.tokens_used == 0
    assert {d.reason for d in small.dropped} == {"over_budget"}


def test_rebuild_from_embeddings_swaps_atomically(memory: MemoryService) -> None:
    load(memory)
    collection = memory.collections.get("notes")
    before = [(h.chunk.id, round(h.score, 5)) for h in memory.search("notes", "lava", 4)]
    old_record, _ = memory.indexes.live(collection.id, "", 0)
    new_record = memory.indexes.rebuild(collection.id, old_record.model_id, old_record.dim)
    assert new_record.id != old_record.id
    live, index = memory.indexes.live(collection.id, "", 0)
    assert live.id == new_record.id and live.state == "live"
    assert index.count() == sum(1 for _ in DOCS)
    after = [(h.chunk.id, round(h.score, 5)) for h in memory.search("notes", "lava", 4)]
    assert after == before


def test_unknown_collection(memory: MemoryService) -> None:
    with pytest.raises(CollectionNotFound):
        memory.search("nope", "x")
    with pytest.raises(CollectionNotFound):
        memory.ingest("nope", [])


def test_stored_vectors_match_the_model(memory: MemoryService, embedder) -> None:
    load(memory, ["cats.txt"])
    hit = memory.search("notes", "cats", 1)[0]
    stored = memory.store.vectors([hit.chunk.id], embedder.model_id)[hit.chunk.id]
    expected = embedder.embed_documents([hit.chunk.text])[0]
    assert np.allclose(stored, expected, atol=1e-5)


class _PoisonedEmbedder:
    """The real model, except that any batch holding the word POISON fails like a crashed
    runtime would (a plain exception, not an ember error)."""

    def __init__(self, base) -> None:
        self._base = base
        self.model_id, self.dim = base.model_id, base.dim

    def embed_documents(self, texts):
        if any("POISON" in text for text in texts):
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        return self._base.embed_documents(texts)

    def embed_query(self, text):
        return self._base.embed_query(text)


def test_failures_mid_batch_lose_nothing_already_accepted(
    memory: MemoryService, embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ember.memory import preparer as preparer_module
    from ember.memory.ingest import Ingestor

    real_extract = preparer_module.extract

    def flaky_extract(document, max_bytes):
        if document.source == "crash.html":
            raise RecursionError("maximum recursion depth exceeded")
        return real_extract(document, max_bytes)

    monkeypatch.setattr(preparer_module, "extract", flaky_extract)
    ingestor = Ingestor(
        memory.collections,
        memory.store,
        memory.indexes,
        _PoisonedEmbedder(embedder),
        memory.ingestor.preparer._chunker,
        batch_size=1,
    )
    report = ingestor.ingest(
        "notes",
        [
            SourceDocument("one.txt", b"Photosynthesis turns light into sugar."),
            SourceDocument("crash.html", b"<p>deeply nested</p>"),
            SourceDocument("two.txt", b"This one carries POISON for the embedder."),
            SourceDocument("three.txt", b"Glaciers carve valleys over millennia."),
        ],
    )
    assert [(o.source, o.status, o.error_code) for o in report.outcomes] == [
        ("one.txt", "created", None),
        ("crash.html", "failed", "document_unreadable"),
        ("two.txt", "failed", "internal"),
        ("three.txt", "created", None),
    ]
    assert "RecursionError" in (report.outcomes[1].error or "")
    assert set(sources(memory.search("notes", "sugar valleys", 10))) == {"one.txt", "three.txt"}


def test_a_vector_index_that_refuses_writes_is_rebuilt_from_the_table(
    memory: MemoryService,
) -> None:
    load(memory, ["cats.txt"])
    collection = memory.collections.get("notes")
    old_record, old_index = memory.indexes.current(collection.id)
    old_index.close()
    report = memory.ingest("notes", [SourceDocument("tides.txt", DOCS["tides.txt"][0].encode())])
    assert [o.status for o in report.outcomes] == ["created"]
    assert report.index_error is None
    live, index = memory.indexes.current(collection.id)
    assert live.id != old_record.id and index.count() == 2
    hits = memory.search("notes", "the moon pulls the sea", 1, mode="dense")
    assert sources(hits) == ["tides.txt"]


def test_a_second_process_sees_what_the_first_ingested(
    memory: MemoryService, database_url: str, tmp_path, embedder, tokenizer
) -> None:
    from ember.config import load_config
    from ember.storage import Database

    load(memory, ["cats.txt"])
    config = load_config(
        None,
        {
            "EMBER_HOME": str(tmp_path),
            "EMBER_MEMORY_CHUNK_TOKENS": "48",
            "EMBER_MEMORY_CHUNK_OVERLAP": "8",
        },
    )
    database = Database(database_url)
    other = memory_plane(config, database, embedder=(embedder, tokenizer))
    try:
        assert sources(other.search("notes", "a purring pet", 1, mode="dense")) == ["cats.txt"]
        load(memory, ["tides.txt"])
        hits = other.search("notes", "the moon pulls the sea", 1, mode="dense")
        assert sources(hits) == ["tides.txt"]
        load(other, ["bread.html"])
        hits = memory.search("notes", "yeast and dough", 1, mode="dense")
        assert sources(hits) == ["bread.html"]
        collection = memory.collections.get("notes")
        assert memory.indexes.current(collection.id)[1].count() == 3
    finally:
        other.close()
        database.dispose()
