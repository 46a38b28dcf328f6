"""``search_memory`` over a real memory plane (SQLite, FAISS, a hash embedder): hits carry
citations, and a principal sees only its own workspace and needs ``memory:read``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from ember.agents import AgentLoop, AgentProfile, ServiceMemorySearch, builtin_tools
from ember.auth.principal import Principal
from ember.auth.scopes import Scope
from ember.chat import ToolCall
from ember.config import load_config
from ember.memory.extract import SourceDocument
from ember.memory.service import MemoryService
from ember.providers.router import Router
from ember.services import memory_plane
from ember.storage import Database, Migrator
from tests.agents.conftest import MODEL
from tests.fakes.scripted_chat_fake import ScriptedCall, ScriptedChatServer, Turn
from tests.support.embedders import HashEmbedder, WordTokenizer

ALICE = Principal("alice", frozenset({Scope.MEMORY_READ}), workspace="team")


@pytest.fixture
def memory(tmp_path: Path) -> Iterator[MemoryService]:
    config = load_config(None, {"EMBER_HOME": str(tmp_path / "home")})
    database = Database(f"sqlite:///{tmp_path / 'memory.db'}")
    Migrator(database).upgrade()
    service = memory_plane(config, database, embedder=(HashEmbedder(), WordTokenizer()))
    team = service.in_workspace("team")
    team.collections.create("notes")
    team.ingest(
        "notes",
        [
            SourceDocument(
                "kb/otters.md",
                b"Sea otters hold hands while they sleep.",
                "text/markdown",
                "Otters",
            ),
            SourceDocument(
                "kb/bees.md", b"Bees dance to show where flowers are.", "text/markdown", "Bees"
            ),
        ],
    )
    other = service.in_workspace("default")
    other.collections.create("notes")
    other.ingest("notes", [SourceDocument("secret.md", b"Otters secret plans.", "text/markdown")])
    try:
        yield service
    finally:
        service.close()
        database.dispose()


async def test_hits_carry_citations_from_the_callers_workspace(memory: MemoryService) -> None:
    hits = await ServiceMemorySearch(memory, ALICE)("notes", "otters sleep", 5)
    assert hits and hits[0].title == "Otters" and hits[0].source == "kb/otters.md"
    assert {hit.source for hit in hits} <= {"kb/otters.md", "kb/bees.md"}
    first = hits[0]
    assert (first.collection, first.version, first.chunk, first.char_start) == ("notes", 1, 0, 0)
    assert first.char_end == len("Sea otters hold hands while they sleep.")
    assert first.document_id


async def test_the_tool_needs_memory_read_and_stays_in_the_workspace(
    memory: MemoryService, workspace: Path
) -> None:
    profile = AgentProfile(model=MODEL, tools=("search_memory",))
    allowed = builtin_tools(profile, workspace, memory=ServiceMemorySearch(memory, ALICE))
    result = await allowed.call(
        ToolCall.of("1", "search_memory", {"collection": "notes", "query": "otters"})
    )
    hits = json.loads(result.content)["hits"]
    assert "secret.md" not in {hit["citation"]["source"] for hit in hits}
    assert set(hits[0]["citation"]) == {
        "collection",
        "document_id",
        "title",
        "version",
        "source",
        "chunk",
        "char_start",
        "char_end",
    }
    stranger = Principal("bob", frozenset({Scope.MEMORY_READ}), workspace="elsewhere")
    missing = builtin_tools(profile, workspace, memory=ServiceMemorySearch(memory, stranger))
    not_found = await missing.call(
        ToolCall.of("2", "search_memory", {"collection": "notes", "query": "x"})
    )
    assert not_found.code == "collection_not_found"
    writer = Principal("carol", frozenset({Scope.JOBS_WRITE}), workspace="team")
    refused = builtin_tools(profile, workspace, memory=ServiceMemorySearch(memory, writer))
    forbidden = await refused.call(
        ToolCall.of("3", "search_memory", {"collection": "notes", "query": "x"})
    )
    assert forbidden.code == "forbidden"


async def test_the_model_reads_the_citations(
    memory: MemoryService, router: Router, scripted: ScriptedChatServer, workspace: Path
) -> None:
    scripted.load(
        [
            Turn(
                calls=(
                    ScriptedCall(
                        "search_memory", {"collection": "notes", "query": "bees dance", "k": 1}
                    ),
                )
            ),
            Turn("Bees dance [Bees]."),
        ]
    )
    profile = AgentProfile(model=MODEL, tools=("search_memory",))
    tools = builtin_tools(profile, workspace, memory=ServiceMemorySearch(memory, ALICE))
    transcript = await AgentLoop(router.chat, tools, profile).run("How do bees communicate?")
    assert transcript.answer == "Bees dance [Bees]."
    [seen] = [m for m in scripted.requests[1]["messages"] if m["role"] == "tool"]
    [hit] = json.loads(seen["content"])["hits"]
    assert hit["citation"]["title"] == "Bees" and hit["text"].startswith("Bees dance")
