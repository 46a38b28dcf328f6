"""The Ollama provider against a fake Ollama server over real HTTP, and its error mapping."""

from __future__ import annotations

import email.utils
import inspect
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from typing import Any

import httpx
import ollama
import pytest

from ember.chat import ChatMessage, Delta, GenerationOptions, ToolCall
from ember.errors import (
    ProviderAuthFailed,
    ProviderBadRequest,
    ProviderError,
    ProviderModelNotFound,
    ProviderRateLimited,
    ProviderTimeout,
    ProviderUnavailable,
)
from ember.providers.ollama import OLLAMA_ERRORS, OllamaProvider, provider_error
from ember.testing.provider import MESSAGES, RemoteProviderContract, Upstream
from tests.fakes.ollama_fake import FakeOllamaServer, count_tokens, embedding_of, reply_tokens
from tests.providers.vendor_classes import WALKS, httpx_errors, ollama_exports, ollama_raises

MODEL = "fake-llama:latest"
EMBED_MODEL = "fake-embed:latest"
DIM = 24
SAME = GenerationOptions(max_tokens=16, temperature=0.0, seed=7)
QUESTION = "What is the capital of France?"
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup",
            "description": "Look a city up.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string", "description": "The city."}},
                "required": ["city"],
            },
        },
    }
]


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOllamaServer]:
    with FakeOllamaServer(models=(MODEL, EMBED_MODEL), dim=DIM) as running:
        yield running


@pytest.fixture
def fake(server: FakeOllamaServer) -> Iterator[FakeOllamaServer]:
    server.reset()
    yield server
    server.start()
    server.reset()


@pytest.fixture
async def provider(fake: FakeOllamaServer) -> AsyncIterator[OllamaProvider]:
    running = OllamaProvider(fake.host, timeout_s=5, health_timeout_s=1)
    yield running
    await running.aclose()


class TestOllamaProvider(RemoteProviderContract):
    @pytest.fixture
    def model(self) -> str:
        return MODEL

    @pytest.fixture
    def upstream(self, fake: FakeOllamaServer) -> Upstream:
        return fake


# --- what reaches the server, and what comes back -------------------------------------------


async def test_options_reach_the_server(provider: OllamaProvider, fake: FakeOllamaServer) -> None:
    options = GenerationOptions(max_tokens=9, temperature=0.3, top_p=0.8, stop=("zzz",), seed=11)
    await provider.chat(MODEL, MESSAGES, options)
    (call,) = fake.calls
    assert (call.method, call.path) == ("POST", "/api/chat")
    assert call.body["options"] == {
        "num_predict": 9,
        "temperature": 0.3,
        "top_p": 0.8,
        "stop": ["zzz"],
        "seed": 11,
    }
    assert call.body["stream"] is False
    assert call.body["messages"] == [{"role": m.role, "content": m.content} for m in MESSAGES]


async def test_no_options_send_no_options(provider: OllamaProvider, fake: FakeOllamaServer) -> None:
    await provider.generate(MODEL, QUESTION, GenerationOptions())
    (call,) = fake.calls
    assert call.path == "/api/generate"
    assert call.body["prompt"] == QUESTION
    assert "options" not in call.body


async def test_streams_are_asked_for(provider: OllamaProvider, fake: FakeOllamaServer) -> None:
    [d async for d in provider.stream_chat(MODEL, MESSAGES, SAME)]
    [d async for d in provider.stream_generate(MODEL, QUESTION, SAME)]
    assert [(c.path, c.body["stream"]) for c in fake.calls] == [
        ("/api/chat", True),
        ("/api/generate", True),
    ]


async def test_keep_alive_is_sent(fake: FakeOllamaServer) -> None:
    provider = OllamaProvider(fake.host, keep_alive="10m")
    try:
        await provider.chat(MODEL, MESSAGES, SAME)
        await provider.generate(MODEL, QUESTION, replace(SAME, keep_alive_s=0))
    finally:
        await provider.aclose()
    assert fake.calls[0].body["keep_alive"] == "10m"
    assert fake.calls[1].body["keep_alive"] == 0, "a call's keep_alive wins"


async def test_answer_and_usage_are_the_servers(provider: OllamaProvider) -> None:
    expected = reply_tokens(QUESTION)
    prompt_tokens = sum(count_tokens(m.content) for m in MESSAGES)
    answer = await provider.chat(MODEL, MESSAGES, SAME)
    assert answer.text == "".join(expected)
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (
        prompt_tokens,
        len(expected),
    )
    assert answer.finish_reason == "stop"
    assert answer.model == MODEL
    deltas = [d async for d in provider.stream_chat(MODEL, MESSAGES, SAME)]
    assert [d.text for d in deltas[:-1]] == expected
    assert deltas[-1].usage == answer.usage
    assert all(d.usage is None and d.finish_reason is None for d in deltas[:-1])


async def test_generate_usage(provider: OllamaProvider) -> None:
    answer = await provider.generate(MODEL, QUESTION, SAME)
    assert answer.usage.prompt_tokens == count_tokens(QUESTION)
    assert answer.usage.completion_tokens == len(reply_tokens(QUESTION))
    streamed = [d async for d in provider.stream_generate(MODEL, QUESTION, SAME)]
    assert streamed[-1].usage == answer.usage


async def test_num_predict_cuts_the_answer(provider: OllamaProvider) -> None:
    options = GenerationOptions(max_tokens=3)
    answer = await provider.chat(MODEL, MESSAGES, options)
    assert answer.text == "".join(reply_tokens(QUESTION)[:3])
    assert (answer.finish_reason, answer.usage.completion_tokens) == ("length", 3)
    deltas = [d async for d in provider.stream_chat(MODEL, MESSAGES, options)]
    assert "".join(d.text for d in deltas) == answer.text
    assert deltas[-1].finish_reason == "length"


async def test_stop_cuts_the_answer(provider: OllamaProvider) -> None:
    answer = await provider.generate(MODEL, QUESTION, GenerationOptions(stop=(" capital",)))
    assert answer.text == "Fake reply: What is the"
    assert answer.finish_reason == "stop"


async def test_tool_calls_pass_through(provider: OllamaProvider, fake: FakeOllamaServer) -> None:
    options = GenerationOptions(tools=TOOLS)
    answer = await provider.chat(MODEL, [ChatMessage("user", "Paris")], options)
    assert fake.calls[-1].body["tools"] == TOOLS
    raw = json.dumps({"city": "Paris"})
    assert answer.tool_calls == [ToolCall("call_0", "lookup", {"city": "Paris"}, raw)]
    assert answer.tool_calls[0].to_openai() == {
        "id": "call_0",
        "type": "function",
        "function": {"name": "lookup", "arguments": raw},
    }
    history = [
        ChatMessage("user", "Paris"),
        ChatMessage("assistant", "", tool_calls=answer.tool_calls),
        ChatMessage("tool", "sunny, 21 C", tool_call_id="call_0"),
    ]
    follow = await provider.chat(MODEL, history, options)
    sent = fake.calls[-1].body["messages"]
    sent_call = {"function": {"name": "lookup", "arguments": {"city": "Paris"}}}
    assert sent[1]["tool_calls"] == [sent_call]
    assert sent[2] == {"role": "tool", "content": "sunny, 21 C", "tool_name": "lookup"}
    assert follow.text == "".join(reply_tokens("sunny, 21 C"))
    assert follow.tool_calls is None


async def test_streamed_tool_calls(provider: OllamaProvider) -> None:
    options = GenerationOptions(tools=TOOLS)
    deltas = [d async for d in provider.stream_chat(MODEL, [ChatMessage("user", "Oslo")], options)]
    calls = [call for d in deltas for call in d.tool_calls or ()]
    assert [(c.id, c.name, c.arguments) for c in calls] == [("call_0", "lookup", {"city": "Oslo"})]
    assert deltas[-1].finish_reason == "stop"


async def test_parallel_tool_calls_in_a_stream_stay_apart() -> None:
    """Ollama streams parallel calls one per part, each at ``index`` 0: they get their own ids."""

    def part(city: str) -> dict[str, Any]:
        function = {"index": 0, "name": "lookup", "arguments": {"city": city}}
        message = {"role": "assistant", "content": "", "tool_calls": [{"function": function}]}
        return {"model": MODEL, "message": message, "done": False}

    done = {**_PART, "message": {"role": "assistant", "content": ""}, "done": True}
    provider = _mock([part("Paris"), part("Oslo"), {**done, "done_reason": "stop"}])
    deltas = [
        d async for d in provider.stream_chat(MODEL, MESSAGES, GenerationOptions(tools=TOOLS))
    ]
    calls = [call for d in deltas for call in d.tool_calls or ()]
    assert [(c.id, c.arguments) for c in calls] == [
        ("call_0", {"city": "Paris"}),
        ("call_1", {"city": "Oslo"}),
    ]


@pytest.mark.parametrize("raw", ["{not json", "[1, 2]", '"Paris"', "null"])
async def test_tool_arguments_that_are_no_object_are_a_bad_request(
    provider: OllamaProvider, fake: FakeOllamaServer, raw: str
) -> None:
    call = ToolCall.parse("c1", "f", raw)
    assert call.arguments is None and call.raw_arguments == raw
    messages = [ChatMessage("assistant", "", tool_calls=[call])]
    with pytest.raises(ProviderBadRequest, match="not a JSON object"):
        await provider.chat(MODEL, messages, SAME)
    assert fake.calls == []


async def test_blank_tool_arguments_are_no_arguments(
    provider: OllamaProvider, fake: FakeOllamaServer
) -> None:
    messages = [ChatMessage("assistant", "", tool_calls=[ToolCall.parse("c1", "f", "")])]
    await provider.chat(MODEL, messages, SAME)
    assert fake.calls[-1].body["messages"][0]["tool_calls"] == [
        {"function": {"name": "f", "arguments": {}}}
    ]


async def test_tags_carry_digest_size_and_details(
    provider: OllamaProvider, fake: FakeOllamaServer
) -> None:
    infos = {info.name: info for info in await provider.list_models()}
    assert set(infos) == {MODEL, EMBED_MODEL}
    tag = fake.tag(MODEL)
    info = infos[MODEL]
    assert len(tag["digest"]) == 64
    assert (info.digest, info.size_bytes) == (tag["digest"], tag["size"])
    assert info.details["family"] == "llama"
    assert info.details["quantization_level"] == "Q4_K_M"
    assert info.provider == "ollama"


async def test_embeddings_have_one_row_per_text(
    provider: OllamaProvider, fake: FakeOllamaServer
) -> None:
    texts = ["red apples", "green pears", "red apples and green pears"]
    vectors = await provider.embed(EMBED_MODEL, texts)
    assert [len(v) for v in vectors] == [DIM] * 3
    for vector, text in zip(vectors, texts, strict=True):
        assert vector == pytest.approx(embedding_of(text, DIM))
    assert fake.calls[-1].body["input"] == texts


async def test_embed_edges(provider: OllamaProvider, fake: FakeOllamaServer) -> None:
    assert await provider.embed(EMBED_MODEL, []) == []
    assert fake.calls == []
    with pytest.raises(TypeError):
        await provider.embed(EMBED_MODEL, "one text")
    with pytest.raises(ProviderModelNotFound):
        await provider.embed("nothing-here", ["a"])


async def test_a_bare_name_means_latest(provider: OllamaProvider) -> None:
    answer = await provider.chat("fake-llama", MESSAGES, SAME)
    assert answer.text == "".join(reply_tokens(QUESTION))


async def test_no_model_is_a_bad_request(provider: OllamaProvider) -> None:
    with pytest.raises(ProviderBadRequest):
        await provider.chat("", MESSAGES, SAME)


# --- streams that fail ----------------------------------------------------------------------


async def _drain(deltas: AsyncIterator[Delta], into: list[str]) -> None:
    """Collect the texts of a stream until it ends or raises."""
    async for delta in deltas:
        into.append(delta.text)


@pytest.mark.parametrize("cut", [1, 3])
async def test_a_chat_stream_broken_mid_way_raises_after_its_deltas(
    provider: OllamaProvider, fake: FakeOllamaServer, cut: int
) -> None:
    fake.break_stream_after(cut)
    got: list[str] = []
    with pytest.raises(ProviderUnavailable):
        await _drain(provider.stream_chat(MODEL, MESSAGES, SAME), got)
    assert got == reply_tokens(QUESTION)[:cut]
    assert [d.text async for d in provider.stream_chat(MODEL, MESSAGES, SAME)][:cut] == got


async def test_a_generate_stream_broken_after_the_first_chunk(
    provider: OllamaProvider, fake: FakeOllamaServer
) -> None:
    fake.break_stream_after(1)
    got: list[str] = []
    with pytest.raises(ProviderUnavailable):
        await _drain(provider.stream_generate(MODEL, QUESTION, SAME), got)
    assert got == reply_tokens(QUESTION)[:1]


def _mock(lines: list[dict[str, Any]], seen: list[httpx.Request] | None = None) -> OllamaProvider:
    body = b"".join(json.dumps(line).encode() + b"\n" for line in lines)

    def answer(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        return httpx.Response(200, content=body, headers={"content-type": "application/x-ndjson"})

    return OllamaProvider("http://127.0.0.1:9", timeout_s=5, transport=httpx.MockTransport(answer))


_PART = {"model": MODEL, "message": {"role": "assistant", "content": "Hi"}, "done": False}


async def test_a_stream_that_ends_without_its_last_part_is_unavailable() -> None:
    provider = _mock([_PART])
    got: list[str] = []
    with pytest.raises(ProviderUnavailable, match="ended before its last part"):
        await _drain(provider.stream_chat(MODEL, MESSAGES, SAME), got)
    assert got == ["Hi"]


async def test_an_error_line_in_a_stream_is_unavailable(caplog: pytest.LogCaptureFixture) -> None:
    provider = _mock([_PART, {"error": "the model runner stopped"}])
    got: list[str] = []
    with pytest.raises(ProviderUnavailable) as raised:
        await _drain(provider.stream_chat(MODEL, MESSAGES, SAME), got)
    assert got == ["Hi"]
    assert "runner stopped" not in raised.value.detail, "Ollama's words stay in the log"
    assert "runner stopped" in caplog.text


# --- timeouts -------------------------------------------------------------------------------


async def test_each_call_sets_its_own_timeout_on_its_request() -> None:
    seen: list[httpx.Request] = []
    done = {**_PART, "done": True, "done_reason": "stop"}
    provider = _mock([done], seen)
    await provider.chat(MODEL, MESSAGES, GenerationOptions(timeout_s=0.7))
    await provider.chat(MODEL, MESSAGES, GenerationOptions())
    [d async for d in provider.stream_chat(MODEL, MESSAGES, GenerationOptions(timeout_s=1.5))]
    timeouts = [request.extensions["timeout"]["read"] for request in seen]
    assert timeouts == [0.7, 5, 1.5]
    assert seen[0].extensions["timeout"]["connect"] == 0.7


async def test_a_call_timeout_longer_than_the_default_wins(fake: FakeOllamaServer) -> None:
    provider = OllamaProvider(fake.host, timeout_s=0.2)
    try:
        fake.stall_next(0.5)
        answer = await provider.chat(MODEL, MESSAGES, GenerationOptions(timeout_s=3))
        assert answer.text
        fake.stall_next(0.5)
        with pytest.raises(ProviderTimeout):
            await provider.chat(MODEL, MESSAGES, SAME)
    finally:
        await provider.aclose()


async def test_a_stalled_stream_times_out_from_the_iterator(
    provider: OllamaProvider, fake: FakeOllamaServer
) -> None:
    fake.stall_next(2)
    with pytest.raises(ProviderTimeout):
        async for _ in provider.stream_chat(MODEL, MESSAGES, GenerationOptions(timeout_s=0.3)):
            pass


async def test_health_has_a_short_timeout(provider: OllamaProvider, fake: FakeOllamaServer) -> None:
    fake.stall_next(3)
    started = time.monotonic()
    health = await provider.health()
    assert not health.ok and "provider_timeout" in health.detail
    assert time.monotonic() - started < 2.5
    assert (await provider.health()).latency_ms is not None


async def test_list_and_embed_errors_map_too(
    provider: OllamaProvider, fake: FakeOllamaServer
) -> None:
    fake.fail_next(503)
    with pytest.raises(ProviderUnavailable):
        await provider.list_models()
    fake.fail_next(403)
    with pytest.raises(ProviderAuthFailed):
        await provider.embed(EMBED_MODEL, ["a"])
    fake.fail_next(400, message="invalid options")
    with pytest.raises(ProviderBadRequest, match="answered HTTP 400") as raised:
        await provider.generate(MODEL, QUESTION, SAME)
    assert raised.value.extra == {"status": 400}
    assert "invalid options" not in raised.value.detail


# --- the error mapping is complete ----------------------------------------------------------


def test_the_walks_find_what_the_client_raises() -> None:
    """The completeness test of the table is in test_vendor_errors.py, over these walks."""
    assert {ollama.ResponseError, ConnectionError} <= ollama_raises()
    assert {httpx.ReadTimeout, httpx.RemoteProtocolError, httpx.ConnectError} <= set(httpx_errors())
    assert len(httpx_errors()) >= 18
    assert {ollama.ResponseError, ollama.RequestError} <= set(ollama_exports())
    assert set(WALKS["ollama"].vendor_classes()) <= set(OLLAMA_ERRORS)


@pytest.mark.parametrize(
    ("vendor", "error"),
    [
        (httpx.ConnectError, ProviderUnavailable),
        (httpx.ReadTimeout, ProviderTimeout),
        (httpx.ConnectTimeout, ProviderTimeout),
        (httpx.RemoteProtocolError, ProviderUnavailable),
        (httpx.ReadError, ProviderUnavailable),
        (ConnectionError, ProviderUnavailable),
        (ollama.RequestError, ProviderBadRequest),
        (json.JSONDecodeError, ProviderError),
    ],
    ids=lambda value: value.__name__,
)
def test_mapping_table(vendor: type[Exception], error: type[ProviderError]) -> None:
    assert OLLAMA_ERRORS[vendor] is error


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, ProviderBadRequest),
        (401, ProviderAuthFailed),
        (403, ProviderAuthFailed),
        (404, ProviderModelNotFound),
        (409, ProviderBadRequest),
        (422, ProviderBadRequest),
        (429, ProviderRateLimited),
        (500, ProviderUnavailable),
        (502, ProviderUnavailable),
        (503, ProviderUnavailable),
        (-1, ProviderUnavailable),
    ],
)
def test_response_errors_map_by_status(status: int, error: type[ProviderError]) -> None:
    mapped = provider_error(ollama.ResponseError('{"error": "nope"}', status), "call")
    assert type(mapped) is error
    assert mapped.detail.startswith("call: ") and "nope" not in mapped.detail


def _response_error(status: int, headers: dict[str, str]) -> ollama.ResponseError:
    """A ResponseError raised the way the client raises it, inside the httpx error."""
    request = httpx.Request("POST", "http://127.0.0.1:9/api/chat")
    response = httpx.Response(status, headers=headers, json={"error": "busy"}, request=request)
    try:
        try:
            response.raise_for_status()
        except httpx.HTTPStatusError as exc:
            raise ollama.ResponseError(exc.response.text, exc.response.status_code) from None
    except ollama.ResponseError as raised:
        return raised
    raise AssertionError("no error raised")


@pytest.mark.parametrize(
    ("value", "expected"),
    [("7", 7.0), ("0.5", 0.5), ("-3", 0.0), ("soon", None), ("nan", None)],
)
def test_retry_after_forms(value: str, expected: float | None) -> None:
    mapped = provider_error(_response_error(429, {"retry-after": value}), "call")
    assert type(mapped) is ProviderRateLimited
    assert mapped.extra.get("retry_after_s") == expected
    assert mapped.extra["status"] == 429


def test_retry_after_as_a_date() -> None:
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    mapped = provider_error(_response_error(429, {"retry-after": when}), "call")
    assert mapped.extra["retry_after_s"] == pytest.approx(30, abs=2)


def test_unknown_exceptions_stay_provider_errors() -> None:
    assert type(provider_error(RuntimeError("odd"), "call")) is ProviderError


# --- the package and the fake ---------------------------------------------------------------


def test_the_package_exports_it_lazily() -> None:
    code = (
        "import sys, ember.providers as p; print('ollama' in sys.modules); "
        "p.OllamaProvider; print('ollama' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "True"]


def test_settings_out_of_range_are_refused() -> None:
    with pytest.raises(ValueError, match="timeouts"):
        OllamaProvider(timeout_s=0)
    with pytest.raises(ValueError, match="timeouts"):
        OllamaProvider(name="")


@pytest.mark.parametrize("method", ["fail_next", "stall_next", "stop", "start"])
def test_the_fake_has_the_upstream_signatures(method: str) -> None:
    wanted = inspect.signature(getattr(Upstream, method))
    have = inspect.signature(getattr(FakeOllamaServer, method))
    positional = [p for p in have.parameters.values() if p.kind != p.KEYWORD_ONLY]
    assert [p.name for p in positional] == list(wanted.parameters)
    assert [p.default for p in positional] == [p.default for p in wanted.parameters.values()]
    assert have.return_annotation == wanted.return_annotation


async def test_the_fake_speaks_ollamas_wire_format(fake: FakeOllamaServer) -> None:
    async with httpx.AsyncClient(base_url=fake.host) as client:
        streamed = await client.post("/api/chat", json={"model": MODEL, "messages": []})
        lines = [json.loads(line) for line in streamed.text.splitlines()]
        missing = await client.post("/api/generate", json={"model": "x", "prompt": "hi"})
        version = await client.get("/api/version")
        show = await client.post("/api/show", json={"model": MODEL})
    assert streamed.headers["content-type"] == "application/x-ndjson"
    assert lines[-1]["done"] is True and lines[-1]["done_reason"] == "stop"
    assert all(line["done"] is False for line in lines[:-1]) and len(lines) > 1
    assert (missing.status_code, missing.json()) == (404, {"error": "model 'x' not found"})
    assert version.json() == {"version": fake.version}
    assert show.json()["model_info"]["llama.context_length"] == 4096


async def test_stop_and_start_keep_the_port(fake: FakeOllamaServer) -> None:
    port = fake.port
    fake.stop()
    async with httpx.AsyncClient() as client:
        with pytest.raises(httpx.ConnectError):
            await client.get(f"{fake.host}/api/version")
        fake.start()
        assert fake.port == port
        assert (await client.get(f"{fake.host}/api/version")).status_code == 200
