"""The repository suite: runs on SQLite and on a real Postgres server alike."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC

import pytest
from sqlalchemy import func, select

from ember.errors import CollectionExists, CollectionNotFound
from ember.storage import AuditRecord, Database, SqlAuditLog, SqlCollectionRepository
from ember.storage.tables import Chunk, Document, DocumentVersion

pytestmark = pytest.mark.slow


def test_collection_create_get_roundtrip(database: Database) -> None:
    repo = SqlCollectionRepository(database)
    created = repo.create("papers", description="d", embedding_model="m", metadata={"a": [1]})
    fetched = repo.get("papers")
    assert fetched == created
    assert fetched.metadata == {"a": [1]}
    assert fetched.created_at.tzinfo is not None
    assert fetched.created_at.utcoffset() == UTC.utcoffset(None)


def test_duplicate_collection_is_a_conflict(database: Database) -> None:
    repo = SqlCollectionRepository(database)
    repo.create("papers")
    with pytest.raises(CollectionExists, match="papers"):
        repo.create("papers")
    assert [c.name for c in repo.list()] == ["papers"]


def test_concurrent_creates_of_one_name_yield_one_collection(database: Database) -> None:
    repo = SqlCollectionRepository(database)

    def attempt(_: int) -> str:
        try:
            repo.create("race")
        except CollectionExists:
            return "conflict"
        return "created"

    with ThreadPoolExecutor(4) as pool:
        outcomes = sorted(pool.map(attempt, range(4)))
    assert outcomes == ["conflict", "conflict", "conflict", "created"]


def test_list_pages_in_name_order(database: Database) -> None:
    repo = SqlCollectionRepository(database)
    for name in ["c", "a", "d", "b"]:
        repo.create(name)
    assert [c.name for c in repo.list(limit=2)] == ["a", "b"]
    assert [c.name for c in repo.list(limit=2, after="b")] == ["c", "d"]
    assert repo.list(after="d") == []


def test_missing_collection_raises(database: Database) -> None:
    repo = SqlCollectionRepository(database)
    with pytest.raises(CollectionNotFound):
        repo.get("nope")
    with pytest.raises(CollectionNotFound):
        repo.delete("nope")


def test_delete_cascades_to_documents_and_chunks(database: Database) -> None:
    repo = SqlCollectionRepository(database)
    collection = repo.create("papers")

    def fill(session):
        document = Document(collection_id=collection.id, source="a.txt")
        session.add(document)
        session.flush()
        version = DocumentVersion(
            document_id=document.id, version=1, content_hash="h", size_bytes=3
        )
        session.add(version)
        session.flush()
        session.add(
            Chunk(
                version_id=version.id,
                document_id=document.id,
                collection_id=collection.id,
                ordinal=0,
                text="abc",
                content_hash="h",
                token_count=1,
                char_start=0,
                char_end=3,
            )
        )

    database.run(fill)
    repo.delete("papers")
    counts = database.run(
        lambda s: [s.scalar(select(func.count()).select_from(t)) for t in (Document, Chunk)]
    )
    assert counts == [0, 0]


def test_audit_log_appends_and_filters_newest_first(database: Database) -> None:
    log = SqlAuditLog(database)
    first = log.append(AuditRecord("alice", "collection.create", "papers", "ok", "r1"))
    log.append(AuditRecord("bob", "collection.delete", "papers", "denied", "r2", {"why": "x"}))
    third = log.append(AuditRecord("alice", "collection.delete", "papers", "ok"))
    assert first.id is not None and third.id is not None and third.id > first.id
    assert first.ts is not None
    assert [e.actor for e in log.list()] == ["alice", "bob", "alice"]
    assert [e.id for e in log.list(actor="alice")] == [third.id, first.id]
    bob = log.list(action="collection.delete", actor="bob")
    assert len(bob) == 1 and bob[0].detail == {"why": "x"} and bob[0].outcome == "denied"
    assert len(log.list(limit=1)) == 1


def test_a_failing_transaction_leaves_nothing_behind(database: Database) -> None:
    repo = SqlCollectionRepository(database)

    def half_done(session):
        session.add(Document(collection_id=repo.create("x").id, source="s"))
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        database.run(half_done)
    assert database.run(lambda s: s.scalar(select(func.count()).select_from(Document))) == 0
