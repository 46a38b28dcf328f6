"""The OpenAI-compatible provider against a fake server over real HTTP: the shared contract,
tool calls, broken streams, retries, keys, usage, and the error mapping of streams."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx2
import numpy as np
import openai
import pytest

from ember.chat import Capability, ChatMessage, Delta, GenerationOptions, ToolCall, Usage
from ember.errors import (
    ProviderAuthFailed,
    ProviderBadRequest,
    ProviderError,
    ProviderModelNotFound,
    ProviderRateLimited,
    ProviderTimeout,
    ProviderUnavailable,
)
from ember.providers import OpenAIProvider
from ember.providers.openai_embeddings import OPENAI_ERRORS, provider_error
from ember.testing.provider import MESSAGES, RemoteProviderContract
from tests.fakes.openai_fake import FakeOpenAIServer, bag_of_words, words_of
from tests.providers.vendor_classes import openai_stream_errors

KEY = "test-key"
CHAT = "fake-chat"
EMBED = "fake-embed"
SAME = GenerationOptions(max_tokens=16, temperature=0.0, seed=7)
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather in a city.",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]
ASK_TOOL = [ChatMessage("user", "Use get_weather for Paris")]
TOOL_CALL = {
    "id": "call_fake_0",
    "type": "function",
    "function": {"name": "get_weather", "arguments": json.dumps({"text": ASK_TOOL[0].content})},
}
CALL = ToolCall.from_openai(TOOL_CALL)


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(models=(CHAT, EMBED), api_key=KEY) as running:
        yield running


@pytest.fixture
def upstream(server: FakeOpenAIServer) -> Iterator[FakeOpenAIServer]:
    server.reset()
    yield server
    server.reset()


def make(upstream: FakeOpenAIServer, **settings: Any) -> OpenAIProvider:
    options = {"base_url": upstream.base_url, "api_key": KEY, "timeout_s": 5, **settings}
    return OpenAIProvider("openai", **options)


@pytest.fixture
async def provider(upstream: FakeOpenAIServer) -> AsyncIterator[OpenAIProvider]:
    made = make(upstream)
    yield made
    await made.aclose()


@pytest.fixture
async def build(upstream: FakeOpenAIServer) -> AsyncIterator[Callable[..., OpenAIProvider]]:
    """Makes providers with other settings and closes them afterwards."""
    made: list[OpenAIProvider] = []

    def factory(**settings: Any) -> OpenAIProvider:
        made.append(make(upstream, **settings))
        return made[-1]

    yield factory
    for provider in made:
        await provider.aclose()


@pytest.fixture
def model() -> str:
    return CHAT


class TestOpenAIProvider(RemoteProviderContract):
    pass


async def collect(stream: AsyncIterator[Delta]) -> list[Delta]:
    return [delta async for delta in stream]


async def read_into(texts: list[str], stream: AsyncIterator[Delta]) -> None:
    """Append each delta's text to ``texts`` as it comes, so a failed stream keeps them."""
    async for delta in stream:
        texts.append(delta.text)


async def test_the_answer_is_the_servers(provider: OpenAIProvider) -> None:
    answer = await provider.chat(CHAT, MESSAGES, SAME)
    assert answer.text == "Echo: What is the capital of France?"
    assert (answer.model, answer.provider, answer.finish_reason) == (CHAT, "openai", "stop")
    assert answer.usage == Usage(prompt_tokens=12, completion_tokens=7)
    assert answer.tool_calls is None


async def test_requests_carry_the_options(
    provider: OpenAIProvider, upstream: FakeOpenAIServer
) -> None:
    options = GenerationOptions(max_tokens=3, temperature=0.5, top_p=0.9, stop=("x",), seed=1)
    answer = await provider.chat(CHAT, MESSAGES, options)
    assert (answer.text, answer.finish_reason) == ("Echo: What is", "length")
    (call,) = upstream.calls
    assert call.path == "/v1/chat/completions"
    assert call.body == {
        "model": CHAT,
        "messages": [{"role": m.role, "content": m.content} for m in MESSAGES],
        "max_tokens": 3,
        "temperature": 0.5,
        "top_p": 0.9,
        "stop": ["x"],
        "seed": 1,
    }


async def test_generate_honours_max_tokens_and_stop(
    provider: OpenAIProvider, upstream: FakeOpenAIServer
) -> None:
    cut = await provider.generate(CHAT, "one two three four", GenerationOptions(max_tokens=3))
    assert (cut.text, cut.finish_reason, cut.model) == ("Echo: one two", "length", CHAT)
    assert cut.usage == Usage(prompt_tokens=4, completion_tokens=3)
    stopped = await provider.generate(CHAT, "one two three", GenerationOptions(stop=("three",)))
    assert (stopped.text, stopped.finish_reason) == ("Echo: one two ", "stop")
    streamed = await collect(provider.stream_generate(CHAT, "one two three", GenerationOptions()))
    assert [d.text for d in streamed] == ["Echo:", " one", " two", " three", ""]
    assert streamed[-1].usage == Usage(prompt_tokens=3, completion_tokens=4)
    assert [call.path for call in upstream.calls] == ["/v1/completions"] * 3
    assert upstream.calls[-1].body["stream_options"] == {"include_usage": True}


async def test_tool_calls_pass_through(
    provider: OpenAIProvider, upstream: FakeOpenAIServer
) -> None:
    asked = await provider.chat(CHAT, ASK_TOOL, GenerationOptions(tools=TOOLS))
    assert (asked.text, asked.finish_reason, asked.tool_calls) == ("", "tool_calls", [CALL])
    assert CALL.arguments == {"text": ASK_TOOL[0].content}
    assert upstream.calls[-1].body["tools"] == TOOLS

    turns = [
        *ASK_TOOL,
        ChatMessage("assistant", "", tool_calls=asked.tool_calls),
        ChatMessage("tool", "sunny and 21 degrees", tool_call_id="call_fake_0"),
    ]
    answered = await provider.chat(CHAT, turns, GenerationOptions(tools=TOOLS))
    assert (answered.text, answered.tool_calls) == ("Echo: sunny and 21 degrees", None)
    sent = upstream.calls[-1].body["messages"]
    assert sent[1] == {"role": "assistant", "content": None, "tool_calls": [TOOL_CALL]}
    assert sent[2] == {"role": "tool", "content": turns[2].content, "tool_call_id": "call_fake_0"}


async def test_a_tool_answer_without_its_call_id_is_refused(provider: OpenAIProvider) -> None:
    orphan = [*ASK_TOOL, ChatMessage("tool", "sunny", tool_call_id="call_nobody")]
    with pytest.raises(ProviderBadRequest):
        await provider.chat(CHAT, orphan, GenerationOptions(tools=TOOLS))


async def test_streamed_tool_calls_are_put_together_on_the_last_delta(
    provider: OpenAIProvider,
) -> None:
    deltas = await collect(provider.stream_chat(CHAT, ASK_TOOL, GenerationOptions(tools=TOOLS)))
    assert all(delta.tool_calls is None for delta in deltas[:-1])
    assert deltas[-1].tool_calls == [CALL]
    assert deltas[-1].finish_reason == "tool_calls"


@pytest.mark.parametrize("same_index", [False, True], ids=["openai", "ollama-v1"])
async def test_parallel_streamed_tool_calls_stay_apart(
    provider: OpenAIProvider, upstream: FakeOpenAIServer, same_index: bool
) -> None:
    """OpenAI numbers parallel calls 0, 1, ...; Ollama's /v1 sends each whole at index 0."""
    texts = [json.dumps({"city": "Paris"}), json.dumps({"city": "Oslo"})]
    upstream.tool_arguments, upstream.same_index = texts, same_index
    whole = await provider.chat(CHAT, ASK_TOOL, GenerationOptions(tools=TOOLS))
    deltas = await collect(provider.stream_chat(CHAT, ASK_TOOL, GenerationOptions(tools=TOOLS)))
    streamed = deltas[-1].tool_calls
    assert streamed == whole.tool_calls
    assert streamed is not None
    assert [(c.id, c.arguments) for c in streamed] == [
        ("call_fake_0", {"city": "Paris"}),
        ("call_fake_1", {"city": "Oslo"}),
    ]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
async def test_arguments_that_are_not_json_are_kept_as_written(
    provider: OpenAIProvider, upstream: FakeOpenAIServer, stream: bool
) -> None:
    broken = '{"city": "Par'
    upstream.tool_arguments = [broken]
    options = GenerationOptions(tools=TOOLS)
    if stream:
        calls = (await collect(provider.stream_chat(CHAT, ASK_TOOL, options)))[-1].tool_calls
    else:
        calls = (await provider.chat(CHAT, ASK_TOOL, options)).tool_calls
    assert calls == [ToolCall("call_fake_0", "get_weather", None, broken)]
    turns = [
        *ASK_TOOL,
        ChatMessage("assistant", "", tool_calls=calls),
        ChatMessage("tool", "no such city", tool_call_id="call_fake_0"),
    ]
    await provider.chat(CHAT, turns, options)
    sent = upstream.calls[-1].body["messages"][1]["tool_calls"]
    assert sent == [
        {
            "id": "call_fake_0",
            "type": "function",
            "function": {"name": "get_weather", "arguments": broken},
        }
    ]


async def test_usage_is_read_from_the_final_stream_chunk(
    provider: OpenAIProvider, upstream: FakeOpenAIServer
) -> None:
    whole = await provider.chat(CHAT, MESSAGES, SAME)
    deltas = await collect(provider.stream_chat(CHAT, MESSAGES, SAME))
    assert [delta.usage for delta in deltas[:-1]] == [None] * (len(deltas) - 1)
    assert deltas[-1].usage == whole.usage == Usage(prompt_tokens=12, completion_tokens=7)
    assert deltas[-1].finish_reason == "stop"
    body = upstream.calls[-1].body
    assert (body["stream"], body["stream_options"]) == (True, {"include_usage": True})


async def test_a_stream_broken_after_its_first_chunks_raises_from_the_iterator(
    provider: OpenAIProvider, upstream: FakeOpenAIServer
) -> None:
    upstream.break_stream_after(3)
    got: list[str] = []
    with pytest.raises(ProviderUnavailable) as caught:
        await read_into(got, provider.stream_chat(CHAT, MESSAGES, SAME))
    assert got == ["Echo:", " What"]
    assert isinstance(caught.value.__cause__, openai.APIConnectionError)
    assert (await collect(provider.stream_chat(CHAT, MESSAGES, SAME)))[-1].finish_reason == "stop"


async def test_an_error_event_in_a_stream_raises_from_the_iterator() -> None:
    body = (
        'data: {"id":"c","object":"chat.completion.chunk","created":0,"model":"m",'
        '"choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}\n\n'
        'data: {"error":{"message":"the model crashed","type":"server_error"}}\n\n'
    )

    def handler(request: httpx2.Request) -> httpx2.Response:
        headers = {"content-type": "text/event-stream"}
        return httpx2.Response(200, content=body.encode(), headers=headers)

    transport = httpx2.MockTransport(handler)
    client = openai.AsyncOpenAI(
        base_url="http://upstream.invalid/v1",
        api_key=KEY,
        http_client=httpx2.AsyncClient(transport=transport),
    )
    provider = OpenAIProvider("vllm", client=client)
    got: list[str] = []
    with pytest.raises(ProviderError) as caught:
        await read_into(got, provider.stream_chat("m", MESSAGES, SAME))
    assert "the model crashed" not in caught.value.detail
    assert got == ["Hi"]
    assert type(caught.value.__cause__) is openai.APIError
    await provider.aclose()


@pytest.mark.parametrize("call", ["chat", "stream_chat", "generate", "embed"])
async def test_the_clients_own_retries_stay_off(
    upstream: FakeOpenAIServer, build: Callable[..., OpenAIProvider], call: str
) -> None:
    async def once(provider: OpenAIProvider) -> object:
        if call == "stream_chat":
            return await collect(provider.stream_chat(CHAT, MESSAGES, SAME))
        if call == "generate":
            return await provider.generate(CHAT, "hello", SAME)
        if call == "embed":
            return await provider.embed(EMBED, ["hello"])
        return await provider.chat(CHAT, MESSAGES, SAME)

    provider = build()
    for status in (500, 503, 429, 408):
        upstream.fail_next(status, retry_after_s=0.01)
        with pytest.raises(ProviderError):
            await once(provider)
    upstream.stall_next(2)
    with pytest.raises(ProviderTimeout):
        await once(build(timeout_s=0.3))
    assert len(upstream.calls) == 5

    upstream.reset()
    upstream.fail_next(503, retry_after_s=0.01)
    assert await once(build(max_retries=1))
    assert len(upstream.calls) == 2


async def test_the_key_is_sent_as_a_bearer_token(
    provider: OpenAIProvider, upstream: FakeOpenAIServer, build: Callable[..., OpenAIProvider]
) -> None:
    await provider.chat(CHAT, MESSAGES, SAME)
    assert upstream.calls[-1].headers["authorization"] == f"Bearer {KEY}"
    with pytest.raises(ProviderAuthFailed):
        await build(api_key="wrong").chat(CHAT, MESSAGES, SAME)


async def test_openai_s_key_from_the_environment_goes_to_openai_only(
    upstream: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    provider = OpenAIProvider("elsewhere", base_url=upstream.base_url)
    with pytest.raises(ProviderAuthFailed):
        await provider.chat(CHAT, MESSAGES, SAME)
    assert upstream.calls[-1].headers["authorization"] == "Bearer no-key"
    await provider.aclose()
    for official in (None, "https://api.openai.com/v1/", "HTTPS://API.OPENAI.COM/v1"):
        cloud = OpenAIProvider("openai", base_url=official)
        assert cloud._client.api_key == KEY, "no request is sent: the client holds the key"
        await cloud.aclose()


async def test_a_local_server_needs_no_key(
    upstream: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    provider = OpenAIProvider("local-vllm", base_url=upstream.base_url)
    with pytest.raises(ProviderAuthFailed):
        await provider.chat(CHAT, MESSAGES, SAME)
    assert upstream.calls[-1].headers["authorization"] == "Bearer no-key"
    await provider.aclose()


def test_openai_without_a_key_is_auth_failed(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_API_KEY", "OPENAI_ADMIN_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ProviderAuthFailed, match="OPENAI_API_KEY"):
        OpenAIProvider()


async def test_rate_limits_carry_retry_after(
    provider: OpenAIProvider, upstream: FakeOpenAIServer
) -> None:
    upstream.fail_next(429, retry_after_s=2.5)
    with pytest.raises(ProviderRateLimited) as caught:
        await collect(provider.stream_chat(CHAT, MESSAGES, SAME))
    assert caught.value.extra == {"status": 429, "retry_after_s": 2.5}


async def test_an_unknown_model_is_not_found_everywhere(provider: OpenAIProvider) -> None:
    with pytest.raises(ProviderModelNotFound):
        await collect(provider.stream_chat("no-such-model", MESSAGES, SAME))
    with pytest.raises(ProviderModelNotFound):
        await provider.generate("no-such-model", "hello", SAME)
    with pytest.raises(ProviderModelNotFound):
        await provider.embed("no-such-model", ["hello"])


async def test_embed_returns_the_servers_vectors_in_order(
    provider: OpenAIProvider, upstream: FakeOpenAIServer
) -> None:
    upstream.scramble = True
    texts = ["alpha beta", "gamma", "delta epsilon zeta"]
    vectors = await provider.embed(EMBED, texts)
    expected = [bag_of_words(words_of(text), upstream.dim) for text in texts]
    np.testing.assert_array_equal(np.asarray(vectors, dtype=np.float32), np.stack(expected))
    assert upstream.calls[-1].body["encoding_format"] == "float"
    assert await provider.embed(EMBED, []) == []
    assert len(upstream.calls) == 1


async def test_list_models_names_every_model(provider: OpenAIProvider) -> None:
    models = await provider.list_models()
    assert [(m.name, m.provider) for m in models] == [(CHAT, "openai"), (EMBED, "openai")]
    assert models[0].details == {"owned_by": "ember-fake", "created": 0}


async def test_a_stall_past_the_providers_timeout_is_a_timeout(
    upstream: FakeOpenAIServer, build: Callable[..., OpenAIProvider]
) -> None:
    upstream.stall_next(2)
    provider = build(timeout_s=0.3)
    with pytest.raises(ProviderTimeout) as caught:
        await provider.generate(CHAT, "hello", SAME)
    assert isinstance(caught.value.__cause__, openai.APITimeoutError)
    assert (await provider.generate(CHAT, "hello", SAME)).text == "Echo: hello"


async def test_what_is_not_declared_is_refused_without_a_request(
    upstream: FakeOpenAIServer, build: Callable[..., OpenAIProvider]
) -> None:
    provider = build(capabilities={Capability.CHAT})
    with pytest.raises(ProviderBadRequest, match="generate"):
        await provider.generate(CHAT, "hello", SAME)
    with pytest.raises(ProviderBadRequest, match="stream"):
        await collect(provider.stream_chat(CHAT, MESSAGES, SAME))
    with pytest.raises(ProviderBadRequest, match="tools"):
        await provider.chat(CHAT, ASK_TOOL, GenerationOptions(tools=TOOLS))
    with pytest.raises(ProviderBadRequest, match="embed"):
        await provider.embed(EMBED, ["hello"])
    assert upstream.calls == []
    assert provider.capabilities == {Capability.CHAT}


def test_client_and_url_together_are_refused(upstream: FakeOpenAIServer) -> None:
    client = openai.AsyncOpenAI(base_url=upstream.base_url, api_key=KEY)
    with pytest.raises(ValueError, match="not both"):
        OpenAIProvider(base_url=upstream.base_url, client=client)
    with pytest.raises(ValueError, match="must be"):
        OpenAIProvider(base_url=upstream.base_url, timeout_s=0)


def test_the_walk_finds_the_classes_streams_raise() -> None:
    wanted = {openai.APIError, openai.APITimeoutError, openai.APIConnectionError}
    assert wanted <= openai_stream_errors()


@pytest.mark.parametrize("vendor", sorted(openai_stream_errors(), key=lambda cls: cls.__name__))
def test_every_error_a_stream_raises_is_mapped(vendor: type[openai.OpenAIError]) -> None:
    assert vendor in OPENAI_ERRORS, f"openai.{vendor.__name__} needs an entry in OPENAI_ERRORS"
    request = httpx2.Request("POST", "http://127.0.0.1:9/v1/chat/completions")
    made = {
        openai.APIError: lambda: openai.APIError("broke", request, body=None),
        openai.APITimeoutError: lambda: openai.APITimeoutError(request=request),
        openai.APIConnectionError: lambda: openai.APIConnectionError(request=request),
    }
    expected = {
        openai.APIError: ProviderError,
        openai.APITimeoutError: ProviderTimeout,
        openai.APIConnectionError: ProviderUnavailable,
    }
    assert vendor in made, f"add a case for openai.{vendor.__name__}"
    assert type(provider_error(made[vendor](), "stream")) is expected[vendor]


def test_the_fake_streams_the_openai_wire_format(upstream: FakeOpenAIServer) -> None:
    body = {
        "model": CHAT,
        "messages": [{"role": "user", "content": "a b"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    headers = {"authorization": f"Bearer {KEY}"}
    reply = httpx2.post(f"{upstream.base_url}/chat/completions", json=body, headers=headers)
    assert reply.headers["content-type"].startswith("text/event-stream")
    events = reply.text.split("\n\n")
    assert events[-2:] == ["data: [DONE]", ""]
    chunks = [json.loads(event.removeprefix("data: ")) for event in events[:-2]]
    assert [c["choices"][0]["delta"] for c in chunks[:-1]] == [
        {"role": "assistant", "content": ""},
        {"content": "Echo:"},
        {"content": " a"},
        {"content": " b"},
        {},
    ]
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == CHAT for c in chunks)
