"""A ``path`` ingest job never reads through a symbolic link out of its root.

The attacker can write into an ingest root and plants links there: one to a secret file
elsewhere, one to a directory elsewhere. The job runs through the whole in-process job system
over a real memory plane (the bundled MiniLM model); what is outside is never stored, and each
link gets a ``failed`` outcome that says why.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from ember.jobs.kinds import KindRegistry
from ember.jobs.memory_kinds import memory_kinds
from ember.jobs.states import JobState
from ember.memory.service import MemoryService
from ember.providers.hf_tokenizer import HuggingFaceTokenizer
from ember.providers.sentence_transformers import SentenceTransformerEmbedder
from ember.storage import Database
from tests.jobs.conftest import Seen, System, running_system
from tests.memory.conftest import small_chunk_memory
from tests.support.principals import caller

SECRET = "zebracorn passphrase hunter2"


@pytest.fixture(scope="session")
def embedder() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder().load()


@pytest.fixture(scope="session")
def tokenizer() -> HuggingFaceTokenizer:
    return HuggingFaceTokenizer.bundled()


@pytest.fixture
def memory(
    database: Database,
    tmp_path: Path,
    embedder: SentenceTransformerEmbedder,
    tokenizer: HuggingFaceTokenizer,
) -> Iterator[MemoryService]:
    service = small_chunk_memory(database, tmp_path / "home", embedder, tokenizer)
    try:
        yield service
    finally:
        service.close()


@pytest.fixture
def roots(tmp_path: Path) -> tuple[Path, Path]:
    """An ingest root holding one real document and two links out of it."""
    root, outside = tmp_path / "corpus", tmp_path / "outside"
    (root / "sub").mkdir(parents=True)
    (outside / "dir").mkdir(parents=True)
    (root / "sub" / "notes.txt").write_text("Tides follow the moon around the earth.")
    (outside / "secret.txt").write_text(SECRET)
    (outside / "dir" / "more.txt").write_text(SECRET)
    (root / "stolen.txt").symlink_to(outside / "secret.txt")
    (root / "sub" / "elsewhere").symlink_to(outside / "dir", target_is_directory=True)
    return root, outside


@pytest.fixture
async def system(
    database: Database, memory: MemoryService, roots: tuple[Path, Path]
) -> AsyncIterator[System]:
    kinds = KindRegistry(memory_kinds(lambda: memory, ingest_roots=[str(roots[0])]))
    async with running_system(database, kinds, Seen()) as running:
        yield running


async def _ingest(system: System, path: Path) -> Any:
    job, _ = await system.service.submit(
        "ingest", {"collection": "c", "path": str(path), "create": True}, caller("mallory")
    )
    return await system.until_final(job.id, timeout_s=120)


async def test_links_out_of_the_root_are_refused_per_document(
    system: System, memory: MemoryService, roots: tuple[Path, Path]
) -> None:
    root, outside = roots
    final = await _ingest(system, root)
    assert final.state is JobState.SUCCEEDED, final.error_detail
    documents = final.result["documents"]
    created = [d["source"] for d in documents if d["status"] == "created"]
    refused = [d for d in documents if d["status"] == "failed"]
    assert created == ["sub/notes.txt"]
    created_by_job = memory.in_workspace("default").collections.get("c")
    assert created_by_job.embedding_model == memory.embedder.model_id
    assert {d["error_code"] for d in refused} == {"path_not_allowed"}
    assert sorted(d["error"].split(":")[0] for d in refused) == ["stolen.txt", "sub/elsewhere"]
    assert all(str(outside) not in d["error"] and SECRET not in d["error"] for d in refused)
    assert final.result["failed"] == 2
    hits = memory.in_workspace("default").search("c", "zebracorn passphrase", 10, mode="keyword")
    assert hits == []
    everything = memory.in_workspace("default").search("c", "moon tides", 10)
    assert {hit.chunk.source for hit in everything} == {"sub/notes.txt"}


async def test_a_link_given_as_the_path_fails_without_naming_the_roots(
    system: System, roots: tuple[Path, Path]
) -> None:
    root, outside = roots
    for path in (outside / "secret.txt", root / "stolen.txt"):
        final = await _ingest(system, path)
        assert final.state is JobState.FAILED and final.error_code == "path_not_allowed"
        assert final.error_detail is not None and "memory.ingest_roots" in final.error_detail
        assert str(root) not in final.error_detail.replace(str(path), ""), "roots stay private"
