"""The ``chat``, ``generate`` and ``ask`` kinds through the whole job system (hub, dispatcher,
runners) over a real :class:`Router`, on SQLite and Postgres.

The provider is :class:`ScriptedProvider`, a deterministic in-test one that records what it was
sent and can be told to fail or to hold mid-stream; one test goes over the fake OpenAI server
with the real adapter. ``ask`` runs over a real memory plane with the bundled MiniLM model, its
tokenizer standing in for the generation model's.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ember.chat import (
    Capability,
    ChatMessage,
    Completion,
    Delta,
    GenerationOptions,
    Health,
    ModelInfo,
    Usage,
)
from ember.config import ProvidersConfig, RouterConfig
from ember.errors import ProviderBadRequest, ProviderUnavailable, ValidationFailed
from ember.jobs.kinds import KindRegistry
from ember.jobs.llm_kinds import TEMPLATE_TOKENS, ask_messages, llm_kinds
from ember.jobs.records import EventRecord, JobRecord
from ember.jobs.states import JobState
from ember.memory.extract import SourceDocument
from ember.memory.service import MemoryService
from ember.providers import OpenAIProvider
from ember.providers.budget import Budgets
from ember.providers.hf_tokenizer import HuggingFaceTokenizer
from ember.providers.router import Router
from ember.providers.sentence_transformers import SentenceTransformerEmbedder
from ember.providers.usage import estimate_tokens
from ember.storage import Database, SqlUsageLog
from tests.fakes.openai_fake import FakeOpenAIServer
from tests.jobs.conftest import Seen, System, running_system
from tests.memory.conftest import small_chunk_memory
from tests.support.principals import caller

CONTEXT_LENGTH = 200
DOCS = {
    "tides.txt": "The moon's gravity pulls the oceans and causes the tides twice a day.",
    "volcano.txt": "Magma rises through the crust and erupts as lava at the surface of a volcano.",
    "cats.txt": "Cats purr when they are content and sleep for most of the day in the sun.",
    "bread.txt": "Yeast ferments the sugar in the dough, and the bread rises in a warm oven.",
}


@dataclass
class Call:
    """One stream the provider was asked for."""

    op: str
    model: str
    prompt: list[ChatMessage] | str
    options: GenerationOptions


@dataclass
class ScriptedProvider:
    """A deterministic provider: streams ``answer`` a word at a time, usage on the last delta.

    ``fail_after=n`` raises ``provider_unavailable`` after ``n`` deltas; ``hold_after=n`` waits
    for :attr:`release` after ``n`` deltas. ``closed`` counts streams whose generator ended.
    Without ``report_usage`` the last delta has no usage, with ``zero_usage`` a usage of 0
    tokens (as Ollama's adapter gives when Ollama leaves its counts out).
    """

    answer: str = "Paris is the capital of France."
    fail_after: int | None = None
    hold_after: int | None = None
    report_usage: bool = True
    zero_usage: bool = False
    calls: list[Call] = field(default_factory=list)
    closed: int = 0
    release: asyncio.Event = field(default_factory=asyncio.Event)

    name = "local"
    capabilities = frozenset(Capability)

    def pieces(self) -> list[str]:
        return re.findall(r"\S+\s*", self.answer)

    async def _deltas(self) -> AsyncIterator[Delta]:
        pieces = self.pieces()
        try:
            for i, piece in enumerate(pieces):
                if i == self.fail_after:
                    raise ProviderUnavailable("the model server went away")
                if i == self.hold_after:
                    await self.release.wait()
                last = i == len(pieces) - 1
                usage = Usage(11, len(pieces)) if last and self.report_usage else None
                if last and self.zero_usage:
                    usage = Usage(0, 0)
                yield Delta(piece, "stop" if last else None, usage)
        finally:
            self.closed += 1

    def stream_chat(
        self, model: str, messages: Sequence[ChatMessage], options: GenerationOptions
    ) -> AsyncIterator[Delta]:
        self.calls.append(Call("chat", model, list(messages), options))
        return self._deltas()

    def stream_generate(
        self, model: str, prompt: str, options: GenerationOptions
    ) -> AsyncIterator[Delta]:
        self.calls.append(Call("generate", model, prompt, options))
        return self._deltas()

    async def chat(
        self, model: str, messages: Sequence[ChatMessage], options: GenerationOptions
    ) -> Completion:
        return Completion(self.answer, model, self.name, "stop")

    async def generate(self, model: str, prompt: str, options: GenerationOptions) -> Completion:
        return Completion(self.answer, model, self.name, "stop")

    async def embed(self, model: str, texts: Sequence[str]) -> list[list[float]]:
        raise ProviderBadRequest("no embeddings here")

    async def list_models(self) -> list[ModelInfo]:
        return [ModelInfo("tiny", self.name)]

    async def health(self) -> Health:
        return Health(True, "ok")

    async def aclose(self) -> None:
        return None


@dataclass
class World:
    system: System
    provider: ScriptedProvider
    tokenizer: HuggingFaceTokenizer
    usage: SqlUsageLog
    memory: MemoryService | None = None

    def the_memory(self) -> MemoryService:
        assert self.memory is not None, "this test needs the memory fixture"
        return self.memory

    async def run(self, kind: str, payload: dict[str, Any]) -> tuple[JobRecord, list[EventRecord]]:
        job, _ = await self.system.service.submit(kind, payload, caller("alice"), request_id="r-1")
        events = [e async for e in self.system.service.follow(job.id, 0) if e is not None]
        return self.system.jobs.get(job.id), events


def tokens(events: list[EventRecord]) -> list[str]:
    return [e.data["text"] for e in events if e.type == "token"]


def logs(events: list[EventRecord]) -> list[dict[str, Any]]:
    return [e.data for e in events if e.type == "log"]


@pytest.fixture(scope="session")
def embedder() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder().load()


@pytest.fixture(scope="session")
def tokenizer() -> HuggingFaceTokenizer:
    return HuggingFaceTokenizer.bundled()


@pytest.fixture(scope="module")
def openai_server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(models=("gpt",)) as server:
        yield server


@pytest.fixture
async def world(
    database: Database, tokenizer: HuggingFaceTokenizer, openai_server: FakeOpenAIServer
) -> AsyncIterator[World]:
    openai_server.reset()
    provider = ScriptedProvider()
    cloud = OpenAIProvider("openai", openai_server.base_url, api_key="k", timeout_s=5)
    providers: dict[str, Any] = {"local": provider, "openai": cloud}
    aliases = {"default": ["local/tiny"], "cloud": ["openai/gpt"]}
    usage = SqlUsageLog(database)
    config = RouterConfig(aliases=aliases, retry_attempts=1, default_provider=None)
    router = Router(providers, config, budgets=Budgets(ProvidersConfig(), usage))
    holder: list[World] = []
    kinds = KindRegistry(
        llm_kinds(
            lambda: router,
            lambda: holder[0].the_memory(),
            lambda alias: tokenizer,
            lambda alias: CONTEXT_LENGTH,
        )
    )
    try:
        async with running_system(database, kinds, Seen()) as system:
            holder.append(World(system, provider, tokenizer, usage))
            try:
                yield holder[0]
            finally:
                provider.release.set()
    finally:
        await cloud.aclose()


@pytest.fixture
def memory(
    world: World,
    database: Database,
    tmp_path: Path,
    embedder: SentenceTransformerEmbedder,
    tokenizer: HuggingFaceTokenizer,
) -> Iterator[MemoryService]:
    service = small_chunk_memory(database, tmp_path, embedder, tokenizer)
    service.collections.create("notes")
    report = service.ingest("notes", [SourceDocument(s, t.encode()) for s, t in DOCS.items()])
    assert report.count("created") == len(DOCS), report.outcomes
    world.memory = service
    try:
        yield service
    finally:
        service.close()


async def test_chat_streams_tokens_that_join_to_the_result(world: World) -> None:
    final, events = await world.run(
        "chat",
        {
            "messages": [
                {"role": "system", "content": "Answer briefly."},
                {"role": "user", "content": "What is the capital of France?"},
            ],
            "max_tokens": 16,
            "temperature": 0.0,
            "seed": 7,
            "stop": ["\n"],
        },
    )
    assert final.state is JobState.SUCCEEDED, final.error_detail
    result = final.result
    assert result is not None
    assert "".join(tokens(events)) == result["text"] == world.provider.answer
    assert (result["provider"], result["model"], result["alias"]) == ("local", "tiny", "default")
    assert result["finish_reason"] == "stop"
    assert result["usage"] == {
        "prompt_tokens": 11,
        "completion_tokens": 6,
        "total_tokens": 17,
        "estimated": False,
    }
    (call,) = world.provider.calls
    assert call.op == "chat" and call.model == "tiny"
    assert call.prompt == [
        ChatMessage("system", "Answer briefly."),
        ChatMessage("user", "What is the capital of France?"),
    ]
    assert call.options == GenerationOptions(max_tokens=16, temperature=0.0, stop=("\n",), seed=7)
    assert [e.type for e in events][-2:] == ["result", "state"]
    (row,) = world.usage.list()
    assert (row.principal, row.job_id, row.request_id) == ("alice", final.id, "r-1")
    assert (row.provider, row.model, row.prompt_tokens, row.completion_tokens) == (
        "local",
        "tiny",
        11,
        6,
    )


async def test_tokens_are_published_while_the_model_still_writes(world: World) -> None:
    world.provider.hold_after = 1
    job, _ = await world.system.service.submit("generate", {"prompt": "Say hi"}, caller("alice"))
    seen: list[str] = []
    async for event in world.system.service.follow(job.id, 0):
        if event is not None and event.type == "token":
            if not seen:
                assert world.system.jobs.get(job.id).state is JobState.RUNNING
                world.provider.release.set()
            seen.append(event.data["text"])
    final = world.system.jobs.get(job.id)
    assert final.state is JobState.SUCCEEDED and final.result is not None
    assert seen[0] == "Paris "
    assert "".join(seen) == final.result["text"] == world.provider.answer
    (call,) = world.provider.calls
    assert (call.op, call.prompt) == ("generate", "Say hi")


async def test_a_burst_of_deltas_is_coalesced_into_fewer_events(world: World) -> None:
    world.provider.answer = " ".join(f"w{i}" for i in range(200))
    world.provider.report_usage = False
    final, events = await world.run("generate", {"prompt": "Count"})
    assert final.result is not None
    assert 1 <= len(tokens(events)) < len(world.provider.pieces())
    assert "".join(tokens(events)) == final.result["text"] == world.provider.answer
    usage = final.result["usage"]
    assert usage["estimated"] is True and usage["completion_tokens"] > 0


@pytest.mark.parametrize("reported", ["none", "zero"])
async def test_usage_the_provider_did_not_count_is_estimated_as_recorded(
    world: World, reported: str
) -> None:
    world.provider.report_usage = reported != "none"
    world.provider.zero_usage = reported == "zero"
    final, _ = await world.run("generate", {"prompt": "Say hi"})
    assert final.result is not None
    usage = final.result["usage"]
    (row,) = world.usage.list()
    assert usage["estimated"] is True
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == (
        row.prompt_tokens,
        row.completion_tokens,
    )
    assert usage["completion_tokens"] == estimate_tokens([world.provider.answer]) > 0
    assert usage["total_tokens"] == row.prompt_tokens + row.completion_tokens


async def test_a_stream_that_breaks_fails_the_job_and_keeps_the_partial_text(
    world: World,
) -> None:
    world.provider.fail_after = 3
    final, events = await world.run("chat", {"messages": [{"role": "user", "content": "Hi"}]})
    assert final.state is JobState.FAILED
    assert final.error_code == "stream_interrupted"
    partial = "Paris is the "
    assert "".join(tokens(events)) == partial
    (log,) = logs(events)
    assert log["partial_text"] == partial and log["cause_code"] == "provider_unavailable"
    assert events[-2].data["code"] == "stream_interrupted"
    assert world.provider.closed == 1


async def test_cancelling_the_job_stops_the_stream(world: World) -> None:
    world.provider.hold_after = 2
    job, _ = await world.system.service.submit(
        "chat", {"messages": [{"role": "user", "content": "Hi"}]}, caller("alice")
    )
    async for event in world.system.service.follow(job.id, 0):
        if event is not None and event.type == "token":
            break
    await world.system.service.cancel(job.id, caller("alice"))
    final = await world.system.until_final(job.id)
    assert final.state is JobState.CANCELLED
    assert world.provider.closed == 1
    events = [e async for e in world.system.service.follow(job.id, 0) if e is not None]
    assert events[-1].data == {"state": "cancelled"}
    assert "".join(tokens(events)) == "Paris is "
    (log,) = logs(events)
    assert log["partial_text"] == "Paris is " and "cancelled" in log["message"]
    (row,) = world.usage.list()
    assert row.job_id == job.id and row.completion_tokens > 0


async def test_bad_input_is_refused_with_stable_codes(world: World) -> None:
    service = world.system.service
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("chat", {"messages": []}, "input.messages"),
        ("chat", {"messages": [{"role": "robot", "content": "x"}]}, "input.messages.0.role"),
        ("chat", {"messages": [{"role": "user", "content": "x"}], "top_k": 3}, "input.top_k"),
        ("generate", {"prompt": ""}, "input.prompt"),
        ("ask", {"collection": "notes"}, "input.question"),
        ("ask", {"collection": "n", "question": "q", "filter": {"$bad": 1}}, "input.filter"),
    ]
    for kind, payload, path in cases:
        with pytest.raises(ValidationFailed) as raised:
            await service.submit(kind, payload, caller("alice"))
        assert raised.value.code == "validation_failed"
        assert path in [e["path"] for e in raised.value.errors], raised.value.errors
    assert world.provider.calls == []


async def test_an_unknown_alias_fails_the_job_before_any_token(world: World) -> None:
    final, events = await world.run(
        "chat", {"model": "nope", "messages": [{"role": "user", "content": "Hi"}]}
    )
    assert final.error_code == "provider_model_not_found"
    assert tokens(events) == []


async def test_chat_over_the_openai_adapter(world: World, openai_server: FakeOpenAIServer) -> None:
    messages = [{"role": "user", "content": "the quick brown fox jumps"}]
    final, events = await world.run("chat", {"model": "cloud", "messages": messages})
    assert final.result is not None, final.error_detail
    assert final.result["provider"] == "openai"
    assert "".join(tokens(events)) == final.result["text"] == "Echo: the quick brown fox jumps"
    openai_server.break_stream_after(3)
    broken, events = await world.run("chat", {"model": "cloud", "messages": messages})
    assert broken.error_code == "stream_interrupted"
    (log,) = logs(events)
    assert log["partial_text"] == "".join(tokens(events)) != ""


@pytest.mark.slow
async def test_ask_answers_from_the_packed_context_and_cites_real_chunks(
    world: World, memory: MemoryService
) -> None:
    world.provider.answer = "The moon pulls the oceans [1]."
    question = "What causes the tides?"
    final, events = await world.run(
        "ask", {"collection": "notes", "question": question, "top_k": 4, "max_tokens": 32}
    )
    assert final.state is JobState.SUCCEEDED, final.error_detail
    result = final.result
    assert result is not None
    assert "".join(tokens(events)) == result["answer"] == world.provider.answer

    scaffold = sum(world.tokenizer.count(m.content) for m in ask_messages("", question))
    assert result["budget"] == CONTEXT_LENGTH - scaffold - TEMPLATE_TOKENS - 32
    assert 0 < result["tokens_used"] <= result["budget"]
    (call,) = world.provider.calls
    assert call.options.max_tokens == 32
    assert isinstance(call.prompt, list)
    system, user = call.prompt
    assert (system.role, user.role, user.content) == ("system", "user", question)
    sent = sum(world.tokenizer.count(m.content) for m in call.prompt)
    assert sent + TEMPLATE_TOKENS + 32 <= CONTEXT_LENGTH

    context = result["context"]
    assert result["dropped"], "the budget is meant to leave some hits out"
    assert {d["reason"] for d in result["dropped"]} == {"over_budget"}
    assert len(context) + len(result["dropped"]) == result["retrieved"] == 4
    stored = memory.store.chunks([c["chunk_id"] for c in context])
    for chunk in context:
        record = stored[chunk["chunk_id"]]
        assert f"[{chunk['citation']}] {record.source}" in system.content
        assert record.text in system.content
        assert (chunk["document_id"], chunk["version"]) == (record.document_id, record.version)
        assert (chunk["char_start"], chunk["char_end"]) == (record.char_start, record.char_end)
        assert DOCS[record.source][record.char_start : record.char_end] == record.text
        assert chunk["text"] == record.text, "a cited chunk opens with its text"
    (cited,) = result["citations"]
    assert cited == {k: v for k, v in context[0].items() if k != "tokens"}
    assert cited["citation"] == 1 and cited["source"] == "tides.txt"

    (log,) = logs(events)
    assert (log["retrieved"], log["packed"]) == (4, len(context))
    assert log["tokens_used"] == result["tokens_used"]


@pytest.mark.slow
async def test_ask_without_matching_passages_still_answers(
    world: World, memory: MemoryService
) -> None:
    world.provider.answer = "I do not know."
    final, events = await world.run(
        "ask",
        {"collection": "notes", "question": "tides", "filter": {"lang": "fr"}, "max_tokens": 32},
    )
    assert final.result is not None, final.error_detail
    assert final.result["citations"] == [] and final.result["context"] == []
    assert final.result["answer"] == "I do not know."
    (call,) = world.provider.calls
    assert isinstance(call.prompt, list) and "(no passages found)" in call.prompt[0].content
    assert "without context" in logs(events)[0]["message"]


@pytest.mark.slow
async def test_ask_refuses_an_unknown_collection_and_an_oversized_answer(
    world: World, memory: MemoryService
) -> None:
    final, _ = await world.run("ask", {"collection": "nope", "question": "tides"})
    assert final.error_code == "collection_not_found"
    final, _ = await world.run(
        "ask", {"collection": "notes", "question": "tides", "max_tokens": CONTEXT_LENGTH}
    )
    assert final.error_code == "validation_failed"
    assert "max_tokens" in (final.error_detail or "")
    assert world.provider.calls == []
