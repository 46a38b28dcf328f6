"""The router over the real adapters, against the fake Ollama and OpenAI servers over HTTP.

``ollama`` is the local provider (free), ``openai`` the cloud one (priced); ``vllm`` is a
second OpenAI-compatible provider on the same fake server. Calls are counted at the fakes.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ember.chat import ChatMessage, Delta, GenerationOptions, Usage
from ember.config import Budget, Price, ProvidersConfig, RouterConfig, TracingConfig
from ember.errors import (
    BudgetExceeded,
    NoProviderAvailable,
    ProviderAuthFailed,
    ProviderBadRequest,
    ProviderError,
    ProviderModelNotFound,
    ProviderUnavailable,
    StreamInterrupted,
)
from ember.observability.metrics import PrometheusMetrics
from ember.observability.traces import RecentTraces, SpanRecord
from ember.observability.tracing import Tracing, span, trace_id
from ember.providers import OllamaProvider, OpenAIProvider
from ember.providers.breaker import BreakerState
from ember.providers.budget import Budgets
from ember.providers.router import Candidate, Router, RouteRequest
from ember.providers.usage import estimate_tokens
from ember.storage import Database, Migrator, SqlUsageLog
from ember.testing.metrics import sample
from tests.fakes.ollama_fake import FakeOllamaServer
from tests.fakes.openai_fake import FakeOpenAIServer
from tests.support.clock import FakeClock

ASK = [ChatMessage("user", "What is the capital of France?")]
OPTIONS = GenerationOptions(max_tokens=16, temperature=0.0, seed=7)
PRICE = Price(prompt_per_1k_usd=1.0, completion_per_1k_usd=2.0)
ALIASES = {
    "chat": ["ollama/llama", "openai/gpt"],
    "cloud": ["openai/gpt"],
    "tiered": ["ollama/llama | vllm/gpt", "openai/gpt"],
    "embed": ["ollama/embed", "openai/gpt"],
}
CONFIG = RouterConfig(
    aliases=ALIASES,
    retry_attempts=2,
    retry_base_s=0.1,
    retry_max_s=1.0,
    breaker_failures=2,
    breaker_open_s=30.0,
)


@pytest.fixture(scope="module")
def ollama_server() -> Iterator[FakeOllamaServer]:
    with FakeOllamaServer(models=("llama:latest", "embed:latest")) as server:
        yield server


@pytest.fixture(scope="module")
def openai_server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(models=("gpt",)) as server:
        yield server


@pytest.fixture
def ollama(ollama_server: FakeOllamaServer) -> Iterator[FakeOllamaServer]:
    ollama_server.start()
    ollama_server.reset()
    yield ollama_server
    ollama_server.start()
    ollama_server.reset()


@pytest.fixture
def cloud(openai_server: FakeOpenAIServer) -> Iterator[FakeOpenAIServer]:
    openai_server.reset()
    yield openai_server
    openai_server.reset()


@pytest.fixture
def usage(tmp_path: Path) -> Iterator[SqlUsageLog]:
    database = Database(f"sqlite:///{tmp_path / 'ember.db'}")
    Migrator(database).upgrade()
    yield SqlUsageLog(database)
    database.dispose()


class World:
    """The router under test and what it was given."""

    def __init__(self, ollama: FakeOllamaServer, cloud: FakeOpenAIServer) -> None:
        self.ollama, self.cloud = ollama, cloud
        self.clock = FakeClock(0.0)
        self.sleeps: list[float] = []
        self.providers = {
            "ollama": OllamaProvider(ollama.host, name="ollama", timeout_s=5),
            "openai": OpenAIProvider("openai", cloud.base_url, api_key="k", timeout_s=5),
            "vllm": OpenAIProvider("vllm", cloud.base_url, api_key="k", timeout_s=5),
        }

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)

    def router(self, config: RouterConfig = CONFIG, **settings: object) -> Router:
        return Router(
            self.providers,
            config,
            clock=self.clock,
            sleep=self.sleep,
            **settings,  # type: ignore[arg-type]
        )

    def ollama_calls(self) -> int:
        return sum(
            call.path.startswith(("/api/chat", "/api/generate")) for call in self.ollama.calls
        )

    def cloud_calls(self) -> int:
        return sum(call.path != "/v1/models" for call in self.cloud.calls)


@pytest.fixture
async def world(ollama: FakeOllamaServer, cloud: FakeOpenAIServer) -> AsyncIterator[World]:
    made = World(ollama, cloud)
    yield made
    for provider in made.providers.values():
        await provider.aclose()


def budgets(usage: SqlUsageLog, **settings: object) -> Budgets:
    config = ProvidersConfig(prices={"openai": PRICE}, **settings)  # type: ignore[arg-type]
    return Budgets(config, usage)


async def read(stream: AsyncIterator[Delta], into: list[str]) -> None:
    async for delta in stream:
        into.append(delta.text)


# --- order ------------------------------------------------------------------------------------


async def test_the_local_candidate_answers_first(world: World) -> None:
    answer = await world.router().chat("chat", ASK, OPTIONS)
    assert (answer.provider, answer.text) == (
        "ollama",
        "Fake reply: What is the capital of France?",
    )
    assert (world.ollama_calls(), world.cloud_calls()) == (1, 0)


async def test_provider_slash_model_is_one_candidate(world: World) -> None:
    router = world.router()
    assert router.candidates("openai/gpt") == [Candidate("openai", "gpt")]
    answer = await router.chat("openai/gpt", ASK, OPTIONS)
    assert (answer.provider, answer.model) == ("openai", "gpt")
    with pytest.raises(ProviderModelNotFound, match="nope"):
        await router.chat("nope", ASK, OPTIONS)


async def test_equal_candidates_are_ordered_by_the_load_hint(world: World) -> None:
    hints = {("ollama", "llama"): (False, 0), ("vllm", "gpt"): (True, 5)}
    router = world.router(load_hint=lambda p, m: hints[(p, m)])
    order = [str(c) for c in router.candidates("tiered")]
    assert order == ["vllm/gpt", "ollama/llama", "openai/gpt"]
    assert (await router.chat("tiered", ASK, OPTIONS)).provider == "vllm"
    hints.update({("ollama", "llama"): (True, 3), ("vllm", "gpt"): (True, 0)})
    assert [str(c) for c in router.candidates("tiered")][:2] == ["vllm/gpt", "ollama/llama"]
    hints.update({("ollama", "llama"): (True, 0), ("vllm", "gpt"): (True, 0)})
    assert [str(c) for c in router.candidates("tiered")][:2] == ["ollama/llama", "vllm/gpt"]
    assert [str(c) for c in world.router().candidates("tiered")][:2] == ["ollama/llama", "vllm/gpt"]


# --- names ------------------------------------------------------------------------------------


async def test_a_bare_name_goes_to_the_default_provider(world: World) -> None:
    router = world.router(CONFIG.model_copy(update={"default_provider": "ollama"}))
    assert router.candidates("llama") == [Candidate("ollama", "llama")]
    answer = await router.chat("llama", ASK, OPTIONS)
    assert (answer.provider, world.ollama_calls()) == ("ollama", 1)
    assert router.candidates("chat")[0] == Candidate("ollama", "llama"), "aliases come first"
    assert router.candidates("openai/gpt") == [Candidate("openai", "gpt")]
    assert router.candidates("meta-llama/Llama-3-8B") == [
        Candidate("ollama", "meta-llama/Llama-3-8B")
    ], "an unknown prefix is part of a bare name"
    assert router.candidates("llama", RouteRequest(provider="vllm")) == [Candidate("vllm", "llama")]


async def test_a_bare_name_in_an_embedding_call_goes_to_the_embedding_default(
    world: World,
) -> None:
    config = CONFIG.model_copy(
        update={"default_provider": "ollama", "default_embedding_provider": "openai"}
    )
    router = world.router(config)
    embedded = await router.embed("gpt", ["a cat"])
    assert (embedded.provider, embedded.model) == ("openai", "gpt")
    assert router.candidates("gpt") == [Candidate("ollama", "gpt")]


@pytest.mark.parametrize("default", [None, "local"], ids=["unset", "not-configured"])
def test_a_bare_name_without_a_configured_default_is_not_found(
    world: World, default: str | None
) -> None:
    router = world.router(CONFIG.model_copy(update={"default_provider": default}))
    with pytest.raises(ProviderModelNotFound, match="'llama'"):
        router.candidates("llama")
    with pytest.raises(ProviderModelNotFound):
        router.candidates("ollama/")


def test_provider_slash_model_splits_at_the_first_slash_only(world: World) -> None:
    aliases = {"hf": ["openai/meta-llama/Llama-3-8B | ollama/library/llama3:8b"]}
    router = world.router(CONFIG.model_copy(update={"aliases": aliases}))
    assert router.candidates("ollama/library/llama3:8b") == [
        Candidate("ollama", "library/llama3:8b")
    ]
    assert router.candidates("openai/meta-llama/Llama-3-8B") == [
        Candidate("openai", "meta-llama/Llama-3-8B")
    ]
    assert router.candidates("hf") == [
        Candidate("openai", "meta-llama/Llama-3-8B"),
        Candidate("ollama", "library/llama3:8b"),
    ]


async def test_a_slashed_model_name_reaches_the_upstream_whole() -> None:
    with FakeOpenAIServer(models=("meta-llama/Llama-3-8B",)) as server:
        provider = OpenAIProvider("vllm", server.base_url, api_key="k", timeout_s=5)
        try:
            router = Router({"vllm": provider}, CONFIG)
            answer = await router.chat("vllm/meta-llama/Llama-3-8B", ASK, OPTIONS)
        finally:
            await provider.aclose()
    assert (answer.provider, answer.model) == ("vllm", "meta-llama/Llama-3-8B")
    assert server.calls[-1].body["model"] == "meta-llama/Llama-3-8B"


def test_providers_and_aliases_are_read_only_views(world: World) -> None:
    router = world.router()
    assert dict(router.providers) == world.providers
    assert router.providers is not world.providers
    assert router.aliases["tiered"] == (
        (Candidate("ollama", "llama"), Candidate("vllm", "gpt")),
        (Candidate("openai", "gpt"),),
    )
    assert set(router.aliases) == set(ALIASES)
    with pytest.raises(TypeError):
        router.providers["x"] = world.providers["ollama"]  # type: ignore[index]
    with pytest.raises(TypeError):
        router.aliases["x"] = ()  # type: ignore[index]


# --- retries and fallback ---------------------------------------------------------------------


async def test_a_retry_on_the_same_candidate_can_succeed(world: World) -> None:
    world.ollama.fail_next(503)
    answer = await world.router().chat("chat", ASK, OPTIONS)
    assert answer.provider == "ollama"
    assert (world.ollama_calls(), world.cloud_calls()) == (2, 0)
    assert len(world.sleeps) == 1 and 0 <= world.sleeps[0] <= 0.1


async def test_unavailable_falls_back_after_the_retries(world: World) -> None:
    world.ollama.fail_next(503, count=2)
    answer = await world.router().chat("chat", ASK, OPTIONS)
    assert (answer.provider, answer.text) == ("openai", "Echo: What is the capital of France?")
    assert (world.ollama_calls(), world.cloud_calls()) == (2, 1)


async def test_a_timeout_falls_back(world: World) -> None:
    world.ollama.stall_next(5, count=2)
    quick = GenerationOptions(max_tokens=16, timeout_s=0.3)
    answer = await world.router().chat("chat", ASK, quick)
    assert answer.provider == "openai"
    assert world.ollama_calls() == 2


async def test_a_rate_limit_waits_its_retry_after(world: World) -> None:
    world.ollama.fail_next(429, count=2, retry_after_s=0.5)
    answer = await world.router().chat("chat", ASK, OPTIONS)
    assert answer.provider == "openai"
    assert world.sleeps == [0.5]
    assert world.ollama_calls() == 2


async def test_a_retry_after_past_the_max_backoff_moves_on_at_once(world: World) -> None:
    world.ollama.fail_next(429, retry_after_s=30)
    answer = await world.router().chat("chat", ASK, OPTIONS)
    assert answer.provider == "openai"
    assert (world.sleeps, world.ollama_calls()) == ([], 1)


@pytest.mark.parametrize(
    ("status", "error"),
    [(400, ProviderBadRequest), (401, ProviderAuthFailed), (404, ProviderModelNotFound)],
)
async def test_client_errors_fail_fast(
    world: World, status: int, error: type[ProviderError]
) -> None:
    world.ollama.fail_next(status, count=3)
    with pytest.raises(error) as raised:
        await world.router().chat("chat", ASK, OPTIONS)
    assert type(raised.value) is error
    assert (world.ollama_calls(), world.cloud_calls(), world.sleeps) == (1, 0, [])


async def test_when_every_candidate_fails_the_error_lists_each(world: World) -> None:
    world.ollama.fail_next(503, count=2)
    world.cloud.fail_next(500, count=2)
    with pytest.raises(NoProviderAvailable) as raised:
        await world.router().chat("chat", ASK, OPTIONS)
    error = raised.value
    assert (error.code, error.status) == ("no_provider_available", 503)
    assert "ollama/llama: provider_unavailable" in error.detail
    assert "openai/gpt: provider_unavailable" in error.detail
    assert [c["provider"] for c in error.extra["candidates"]] == ["ollama", "openai"]
    assert isinstance(error.__cause__, ProviderUnavailable)
    assert "openai" in str(error.__cause__)


# --- the breaker ------------------------------------------------------------------------------


async def test_the_breaker_opens_skips_and_recovers_half_open(world: World) -> None:
    router = world.router()
    world.ollama.stop()
    assert (await router.chat("chat", ASK, OPTIONS)).provider == "openai"
    assert router.breaker("ollama").state is BreakerState.OPEN

    world.ollama.start()
    answer = await router.chat("chat", ASK, OPTIONS)
    assert answer.provider == "openai"
    assert world.ollama_calls() == 0, "an open breaker sends nothing"

    world.clock.now += 29
    assert (await router.chat("chat", ASK, OPTIONS)).provider == "openai"
    assert world.ollama_calls() == 0

    world.clock.now += 1
    assert router.breaker("ollama").state is BreakerState.HALF_OPEN
    assert (await router.chat("chat", ASK, OPTIONS)).provider == "ollama"
    assert router.breaker("ollama").state is BreakerState.CLOSED
    assert world.ollama_calls() == 1


async def test_a_failed_trial_opens_the_breaker_again(world: World) -> None:
    router = world.router()
    world.ollama.stop()
    await router.chat("chat", ASK, OPTIONS)
    world.clock.now += 30
    assert (await router.chat("chat", ASK, OPTIONS)).provider == "openai"
    assert router.breaker("ollama").state is BreakerState.OPEN
    with pytest.raises(NoProviderAvailable, match="ollama/llama: circuit_open"):
        await router.chat("chat", ASK, OPTIONS, RouteRequest(fallback=False))


# --- overrides --------------------------------------------------------------------------------


async def test_the_request_may_pick_the_provider_and_model(world: World) -> None:
    router = world.router()
    picked = await router.chat("chat", ASK, OPTIONS, RouteRequest(provider="openai"))
    assert (picked.provider, picked.model) == ("openai", "gpt")
    other = await router.chat("chat", ASK, OPTIONS, RouteRequest(provider="vllm", model="gpt"))
    assert other.provider == "vllm"
    assert router.candidates("chat", RouteRequest(model="x")) == [
        Candidate("ollama", "x"),
        Candidate("openai", "x"),
    ]
    assert world.ollama_calls() == 0


async def test_without_fallback_only_the_first_candidate_is_tried(world: World) -> None:
    world.ollama.fail_next(503, count=2)
    with pytest.raises(NoProviderAvailable, match="ollama/llama"):
        await world.router().chat("chat", ASK, OPTIONS, RouteRequest(fallback=False))
    assert (world.ollama_calls(), world.cloud_calls()) == (2, 0)


# --- budgets and usage ------------------------------------------------------------------------


async def test_usage_rows_have_tokens_and_cost(world: World, usage: SqlUsageLog) -> None:
    router = world.router(budgets=budgets(usage))
    route = RouteRequest(principal="alice", workspace="team-a", request_id="req-1", job_id="job-1")
    local = await router.chat("chat", ASK, OPTIONS, route)
    paid = await router.chat("cloud", ASK, OPTIONS, route)
    rows = {row.provider: row for row in usage.list()}
    assert rows["ollama"].prompt_tokens == local.usage.prompt_tokens > 0
    assert rows["ollama"].completion_tokens == local.usage.completion_tokens > 0
    assert rows["ollama"].cost_usd == 0
    openai = rows["openai"]
    assert (openai.prompt_tokens, openai.completion_tokens) == (
        paid.usage.prompt_tokens,
        paid.usage.completion_tokens,
    )
    expected = (paid.usage.prompt_tokens * 1.0 + paid.usage.completion_tokens * 2.0) / 1000
    assert openai.cost_usd == pytest.approx(expected)
    assert rows["ollama"].workspace == "team-a"
    assert (openai.principal, openai.workspace, openai.request_id, openai.job_id, openai.model) == (
        "alice",
        "team-a",
        "req-1",
        "job-1",
        "gpt",
    )


async def test_a_cost_budget_refuses_before_anything_is_sent(
    world: World, usage: SqlUsageLog
) -> None:
    limits = {"principal_budgets": {"alice": Budget(cost_per_day_usd=0.05)}}
    router = world.router(budgets=budgets(usage, **limits))
    alice = RouteRequest(principal="alice")
    await router.chat("cloud", ASK, GenerationOptions(max_tokens=4), alice)
    with pytest.raises(BudgetExceeded) as raised:
        await router.chat("cloud", ASK, GenerationOptions(max_tokens=4000), alice)
    error = raised.value
    assert (error.code, error.status) == ("budget_exceeded", 429)
    assert error.extra["scope"] == "principal" and error.extra["limit"] == "cost_usd"
    assert world.cloud_calls() == 1
    assert len(usage.list()) == 1
    bob = await router.chat("cloud", ASK, GenerationOptions(max_tokens=4000), RouteRequest("bob"))
    assert bob.provider == "openai"


async def test_a_workspace_budget_counts_every_principal_of_the_workspace(
    world: World, usage: SqlUsageLog
) -> None:
    limits = {"workspace_budgets": {"team-a": Budget(tokens_per_day=60)}}
    router = world.router(budgets=budgets(usage, **limits))
    alice = RouteRequest(principal="alice", workspace="team-a")
    bob = RouteRequest(principal="bob", workspace="team-a")
    carol = RouteRequest(principal="carol", workspace="team-b")
    await router.chat("chat", ASK, GenerationOptions(max_tokens=4), alice)
    spent = usage.list()[0].total_tokens
    assert spent > 0
    with pytest.raises(BudgetExceeded) as raised:
        await router.chat("chat", ASK, GenerationOptions(max_tokens=60 - spent), bob)
    assert (raised.value.extra["scope"], raised.value.extra["name"]) == ("workspace", "team-a")
    other = await router.chat("chat", ASK, GenerationOptions(max_tokens=60), carol)
    assert other.provider == "ollama", "another workspace has its own budget"


async def test_local_is_never_refused_for_cost_but_counts_tokens(
    world: World, usage: SqlUsageLog
) -> None:
    limits = {
        "principal_budgets": {"*": Budget(cost_per_day_usd=0.0)},
        "provider_budgets": {"ollama": Budget(tokens_per_day=30)},
    }
    router = world.router(budgets=budgets(usage, **limits))
    assert (await router.chat("chat", ASK, OPTIONS)).provider == "ollama"
    with pytest.raises(BudgetExceeded, match="provider 'ollama': tokens"):
        await router.chat("chat", ASK, OPTIONS, RouteRequest(fallback=False))
    with pytest.raises(BudgetExceeded) as raised:
        await router.chat("chat", ASK, OPTIONS)
    assert (raised.value.extra["scope"], raised.value.extra["limit"]) == ("principal", "cost_usd")
    assert world.ollama_calls() == 1 and world.cloud_calls() == 0
    world.ollama.stop()
    with pytest.raises(NoProviderAvailable) as mixed:
        await router.chat("chat", ASK, GenerationOptions(max_tokens=1))
    outcomes = [c["outcome"] for c in mixed.value.extra["candidates"]]
    assert outcomes == ["provider_unavailable", "budget_exceeded"]


async def test_spending_outside_the_rolling_day_does_not_count(
    world: World, usage: SqlUsageLog
) -> None:
    from ember.storage import UsageEntry

    usage.record(
        UsageEntry(
            "alice", "openai", "gpt", 10, 10, cost_usd=5.0, ts=datetime(2000, 1, 1, tzinfo=UTC)
        )
    )
    limits = {"provider_budgets": {"openai": Budget(cost_per_day_usd=1.0)}}
    router = world.router(budgets=budgets(usage, **limits))
    assert (await router.chat("cloud", ASK, OPTIONS, RouteRequest("alice"))).provider == "openai"


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
async def test_usage_a_provider_did_not_count_is_the_same_estimate_in_the_row_and_the_answer(
    world: World, usage: SqlUsageLog, stream: bool
) -> None:
    world.ollama.report_counts = False
    router = world.router(budgets=budgets(usage))
    if stream:
        routed = router.stream_chat("chat", ASK, OPTIONS)
        assert [d.usage for d in [d async for d in routed] if d.usage] == [Usage(0, 0)]
        answered, estimated = routed.usage, routed.usage_estimated
    else:
        answer = await router.chat("chat", ASK, OPTIONS)
        answered, estimated = answer.usage, True
    (row,) = usage.list()
    text = "Fake reply: What is the capital of France?"
    expected = Usage(estimate_tokens([ASK[0].content]), estimate_tokens([text]))
    assert answered == Usage(row.prompt_tokens, row.completion_tokens) == expected
    assert estimated


async def test_usage_a_provider_counted_is_kept(world: World, usage: SqlUsageLog) -> None:
    router = world.router(budgets=budgets(usage))
    routed = router.stream_chat("chat", ASK, OPTIONS)
    deltas = [d async for d in routed]
    assert routed.usage == deltas[-1].usage and not routed.usage_estimated
    (row,) = usage.list()
    assert routed.usage == Usage(row.prompt_tokens, row.completion_tokens)


# --- streams ----------------------------------------------------------------------------------


async def test_a_stream_failing_before_its_first_delta_falls_back(
    world: World, usage: SqlUsageLog
) -> None:
    world.ollama.fail_next(503, count=2)
    router = world.router(budgets=budgets(usage))
    stream = router.stream_chat("chat", ASK, OPTIONS)
    texts: list[str] = []
    await read(stream, texts)
    assert "".join(texts) == "Echo: What is the capital of France?"
    assert (stream.provider, stream.model) == ("openai", "gpt")
    (row,) = usage.list()
    assert row.provider == "openai" and row.completion_tokens > 0


async def test_a_stream_failing_after_its_first_delta_raises_with_the_partial_text(
    world: World, usage: SqlUsageLog
) -> None:
    world.ollama.break_stream_after(2)
    router = world.router(budgets=budgets(usage))
    texts: list[str] = []
    with pytest.raises(StreamInterrupted) as raised:
        await read(router.stream_chat("chat", ASK, OPTIONS), texts)
    error = raised.value
    assert len(texts) == 2
    assert error.extra["partial_text"] == "".join(texts) == "Fake reply:"
    assert error.extra["cause_code"] == "provider_unavailable"
    assert (error.extra["provider"], error.extra["model"]) == ("ollama", "llama")
    assert isinstance(error.__cause__, ProviderUnavailable)
    assert world.cloud_calls() == 0
    (row,) = usage.list()
    assert (row.provider, row.completion_tokens) == ("ollama", 3)


async def test_an_openai_stream_broken_mid_way(world: World) -> None:
    world.cloud.break_stream_after(3)
    texts: list[str] = []
    with pytest.raises(StreamInterrupted) as raised:
        await read(world.router().stream_chat("cloud", ASK, OPTIONS), texts)
    assert texts and raised.value.extra["partial_text"] == "".join(texts)


async def test_generate_streams_and_embeddings_are_routed(world: World) -> None:
    router = world.router()
    whole = await router.generate("chat", "Say hello", OPTIONS)
    assert (whole.provider, whole.text) == ("ollama", "Fake reply: Say hello")
    texts: list[str] = []
    await read(router.stream_generate("chat", "Say hello", OPTIONS), texts)
    assert "".join(texts) == whole.text
    embedded = await router.embed("embed", ["a b", "c"])
    assert (embedded.provider, embedded.model, len(embedded.vectors)) == ("ollama", "embed", 2)
    assert embedded.usage.prompt_tokens == 1
    fallback = await router.embed("embed", ["a b"], RouteRequest(model="gpt", provider="openai"))
    assert fallback.provider == "openai"


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


async def test_one_log_line_per_call(world: World) -> None:
    world.ollama.fail_next(503, count=2)
    logger = logging.getLogger("ember.providers.router")
    lines, level = Lines(), logger.level
    logger.addHandler(lines)
    logger.setLevel(logging.INFO)
    try:
        answer = await world.router().chat("chat", ASK, OPTIONS)
    finally:
        logger.removeHandler(lines)
        logger.setLevel(level)
    (line,) = [r for r in lines.records if r.getMessage() == "provider call"]
    assert (line.provider, line.model, line.outcome) == ("openai", "gpt", "ok")  # type: ignore[attr-defined]
    assert line.tokens == answer.usage.total_tokens  # type: ignore[attr-defined]
    assert line.latencyMs >= 0  # type: ignore[attr-defined]


# --- spans ------------------------------------------------------------------------------------


@pytest.fixture
def traced() -> Iterator[tuple[Tracing, RecentTraces]]:
    store = RecentTraces()
    tracing = Tracing(TracingConfig(), "router-test", store=store)
    yield tracing, store
    tracing.shutdown()


def _traced_spans(tracing: Tracing, store: RecentTraces, trace: str | None) -> list[SpanRecord]:
    assert trace is not None and tracing.flush()
    return store.get(trace)


async def test_a_routed_call_is_a_genai_span_with_its_retries_fallback_and_upstream_context(
    world: World, traced: tuple[Tracing, RecentTraces]
) -> None:
    tracing, store = traced
    tracer = tracing.tracer("test")
    world.ollama.fail_next(503, count=2)
    with span(tracer, "request"):
        trace = trace_id()
        answer = await world.router(tracer=tracer).chat("chat", ASK, OPTIONS)
    assert answer.provider == "openai"
    spans = _traced_spans(tracing, store, trace)
    request, call, *attempts = spans
    assert call.name == "chat chat" and call.kind == "client" and call.parent_id == request.span_id
    assert call.attributes["gen_ai.operation.name"] == "chat"
    assert call.attributes["gen_ai.request.model"] == "chat"
    assert call.attributes["gen_ai.provider.name"] == "openai"
    assert call.attributes["gen_ai.response.model"] == "gpt"
    assert call.attributes["gen_ai.usage.input_tokens"] == answer.usage.prompt_tokens > 0
    assert call.attributes["gen_ai.usage.output_tokens"] == answer.usage.completion_tokens > 0
    assert call.attributes["gen_ai.response.finish_reasons"] == [answer.finish_reason]
    assert [e["name"] for e in call.events] == ["retry", "candidate_skipped"]
    assert call.events[0]["attributes"]["error.type"] == "provider_unavailable"
    assert call.events[1]["attributes"]["gen_ai.provider.name"] == "ollama"
    assert [(a.name, a.attributes["gen_ai.provider.name"], a.status) for a in attempts] == [
        ("chat llama", "ollama", "error"),
        ("chat llama", "ollama", "error"),
        ("chat gpt", "openai", "unset"),
    ]
    assert all(a.parent_id == call.span_id for a in attempts)
    (sent,) = [c for c in world.cloud.calls if c.path.endswith("/chat/completions")]
    assert sent.headers["traceparent"].split("-")[1:3] == [trace, attempts[-1].span_id]
    ollama_sent = [c for c in world.ollama.calls if c.path == "/api/chat"]
    assert {c.headers["traceparent"].split("-")[1] for c in ollama_sent} == {trace}


async def test_a_refused_call_and_a_stream_are_spans_too(
    world: World, traced: tuple[Tracing, RecentTraces]
) -> None:
    tracing, store = traced
    tracer = tracing.tracer("test")
    router = world.router(tracer=tracer)
    with span(tracer, "request"):
        trace = trace_id()
        with pytest.raises(ProviderModelNotFound):
            await router.chat("nope", ASK, OPTIONS)
        texts: list[str] = []
        await read(router.stream_chat("chat", ASK, OPTIONS), texts)
        embedded = await router.embed("embed", ["a cat"])
    spans = {s.name: s for s in _traced_spans(tracing, store, trace)}
    assert spans["chat nope"].attributes["error.type"] == "provider_model_not_found"
    assert spans["chat nope"].status == "error"
    streamed = spans["chat chat"]
    assert [e["name"] for e in streamed.events] == ["first_token"]
    assert streamed.attributes["gen_ai.usage.output_tokens"] > 0
    assert streamed.attributes["gen_ai.response.finish_reasons"] == ["stop"]
    attempt = spans["chat llama"]
    assert attempt.parent_id == streamed.span_id
    first_token = streamed.events[0]["ts_ns"]
    assert attempt.start_ns < first_token < attempt.end_ns <= streamed.end_ns  # the whole stream
    assert spans["embeddings embed"].attributes["gen_ai.provider.name"] == embedded.provider


# --- metrics ----------------------------------------------------------------------------------


def scraped(metrics: PrometheusMetrics, name: str, **labels: str) -> float | None:
    return sample(metrics.render().decode(), name, labels)


async def test_a_fallback_after_retries_is_counted_with_its_tokens_and_duration(
    world: World,
) -> None:
    metrics = PrometheusMetrics()
    world.ollama.fail_next(503, count=2)
    answer = await world.router(metrics=metrics).chat("chat", ASK, OPTIONS)
    assert answer.provider == "openai"
    ok = {"provider": "openai", "operation": "chat", "outcome": "ok"}
    assert scraped(metrics, "ember_llm_requests_total", **ok) == 1
    assert scraped(metrics, "ember_llm_retries_total", provider="ollama") == 1
    assert scraped(metrics, "ember_llm_fallbacks_total", operation="chat") == 1
    model = {"provider": "openai", "model": "gpt"}
    input_tokens = scraped(metrics, "ember_llm_tokens_total", **model, direction="input")
    output_tokens = scraped(metrics, "ember_llm_tokens_total", **model, direction="output")
    assert (input_tokens, output_tokens) == (
        answer.usage.prompt_tokens,
        answer.usage.completion_tokens,
    )
    duration = {**model, "operation": "chat"}
    assert scraped(metrics, "ember_llm_request_duration_seconds_count", **duration) == 1
    assert scraped(metrics, "ember_llm_breakers_open", provider="ollama") == 1
    assert scraped(metrics, "ember_llm_breakers_open", provider="openai") == 0


async def test_a_first_candidate_answer_is_no_fallback(world: World) -> None:
    metrics = PrometheusMetrics()
    await world.router(metrics=metrics).generate("chat", "Say hello", OPTIONS)
    ok = {"provider": "ollama", "operation": "text_completion", "outcome": "ok"}
    assert scraped(metrics, "ember_llm_requests_total", **ok) == 1
    assert scraped(metrics, "ember_llm_fallbacks_total", operation="text_completion") is None
    assert scraped(metrics, "ember_llm_retries_total", provider="ollama") is None


async def test_a_stream_observes_its_first_token_and_the_gaps_between_deltas(
    world: World,
) -> None:
    metrics = PrometheusMetrics()
    texts: list[str] = []
    await read(world.router(metrics=metrics).stream_chat("chat", ASK, OPTIONS), texts)
    assert len(texts) > 2
    model = {"provider": "ollama", "model": "llama"}
    assert scraped(metrics, "ember_llm_time_to_first_token_seconds_count", **model) == 1
    gaps = scraped(metrics, "ember_llm_inter_token_seconds_count", **model)
    assert gaps == len(texts) - 1
    duration = {**model, "operation": "chat"}
    assert scraped(metrics, "ember_llm_request_duration_seconds_count", **duration) == 1
    ok = {"provider": "ollama", "operation": "chat", "outcome": "ok"}
    assert scraped(metrics, "ember_llm_requests_total", **ok) == 1


async def test_a_call_no_candidate_answered_is_counted_under_provider_none(world: World) -> None:
    metrics = PrometheusMetrics()
    with pytest.raises(ProviderModelNotFound):
        await world.router(metrics=metrics).chat("nope", ASK, OPTIONS)
    refused = {"provider": "none", "operation": "chat", "outcome": "provider_model_not_found"}
    assert scraped(metrics, "ember_llm_requests_total", **refused) == 1
    text = metrics.render().decode()
    assert "ember_llm_request_duration_seconds_count{" not in text
    assert "ember_llm_tokens_total{" not in text


async def test_the_breaker_gauge_follows_the_breaker(world: World) -> None:
    metrics = PrometheusMetrics()
    router = world.router(metrics=metrics)
    assert scraped(metrics, "ember_llm_breakers_open", provider="ollama") == 0
    world.ollama.stop()
    await router.chat("chat", ASK, OPTIONS)
    assert router.breaker("ollama").state is BreakerState.OPEN
    assert scraped(metrics, "ember_llm_breakers_open", provider="ollama") == 1
    world.ollama.start()
    world.clock.now += 30
    assert (await router.chat("chat", ASK, OPTIONS)).provider == "ollama"
    assert scraped(metrics, "ember_llm_breakers_open", provider="ollama") == 0


async def test_a_stream_broken_after_its_first_delta_opens_the_breaker_gauge(
    world: World,
) -> None:
    metrics = PrometheusMetrics()
    router = world.router(RouterConfig(aliases=ALIASES, breaker_failures=1), metrics=metrics)
    world.ollama.break_stream_after(2)
    with pytest.raises(StreamInterrupted):
        await read(router.stream_chat("chat", ASK, OPTIONS), [])
    interrupted = {"provider": "ollama", "operation": "chat", "outcome": "stream_interrupted"}
    assert scraped(metrics, "ember_llm_requests_total", **interrupted) == 1
    output = {"provider": "ollama", "model": "llama", "direction": "output"}
    assert scraped(metrics, "ember_llm_tokens_total", **output) == 3
    assert scraped(metrics, "ember_llm_breakers_open", provider="ollama") == 1


async def test_budget_checks_near_a_limit_and_refusals_are_counted(
    world: World, usage: SqlUsageLog
) -> None:
    metrics = PrometheusMetrics()
    config = ProvidersConfig(workspace_budgets={"team-a": Budget(tokens_per_day=100)})
    router = world.router(budgets=Budgets(config, usage, metrics=metrics))
    alice = RouteRequest(principal="alice", workspace="team-a")
    await router.chat("chat", ASK, GenerationOptions(max_tokens=4), alice)
    spent = usage.list()[0].total_tokens
    near = {"scope": "workspace", "limit": "tokens"}
    assert sample(metrics.render().decode(), "ember_budget_near_limit_total", near) is None
    prompt = estimate_tokens([m.content for m in ASK])
    await router.chat("chat", ASK, GenerationOptions(max_tokens=85 - spent - prompt), alice)
    assert sample(metrics.render().decode(), "ember_budget_near_limit_total", near) == 1
    with pytest.raises(BudgetExceeded):
        await router.chat("chat", ASK, GenerationOptions(max_tokens=100), alice)
    refused = sample(metrics.render().decode(), "ember_budget_refusals_total", near)
    assert refused == 2, "both candidates of the alias were refused"
