"""The scripted fake speaks OpenAI's protocol, and ember's OpenAI provider reads its tool
calls, streamed and whole, including parallel calls all at ``index`` 0."""

from __future__ import annotations

import pytest

from ember.chat import ChatMessage, GenerationOptions, ToolCall
from ember.errors import ProviderBadRequest
from ember.providers import OpenAIProvider
from tests.fakes.scripted_chat_fake import ScriptedCall, ScriptedChatServer, Turn

TOOLS = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
OPTIONS = GenerationOptions(tools=TOOLS)
ASK = [ChatMessage("user", "go")]
PARALLEL = Turn(
    "thinking",
    (
        ScriptedCall("f", {"path": "a.txt"}, id="call_a"),
        ScriptedCall("f", {"path": "b.txt"}, id="call_b"),
        ScriptedCall("f", '{"path": "c.txt"', id="call_c"),
    ),
)
EXPECTED = [
    ToolCall.parse("call_a", "f", '{"path": "a.txt"}'),
    ToolCall.parse("call_b", "f", '{"path": "b.txt"}'),
    ToolCall.parse("call_c", "f", '{"path": "c.txt"'),
]


@pytest.fixture
async def provider(scripted: ScriptedChatServer):  # type: ignore[no-untyped-def]
    provider = OpenAIProvider("scripted", scripted.base_url, api_key="k", timeout_s=5)
    yield provider
    await provider.aclose()


async def test_whole_answers_carry_parallel_calls(
    scripted: ScriptedChatServer, provider: OpenAIProvider
) -> None:
    scripted.load([PARALLEL])
    answer = await provider.chat("agent-model", ASK, OPTIONS)
    assert answer.text == "thinking" and answer.finish_reason == "tool_calls"
    assert answer.tool_calls == EXPECTED
    assert EXPECTED[2].arguments is None
    assert scripted.requests[0]["tools"] == TOOLS


@pytest.mark.parametrize("style", ["openai", "same_index"])
async def test_streamed_parallel_calls_are_put_together(
    scripted: ScriptedChatServer, provider: OpenAIProvider, style: str
) -> None:
    scripted.load([PARALLEL], style=style)  # type: ignore[arg-type]
    deltas = [delta async for delta in provider.stream_chat("agent-model", ASK, OPTIONS)]
    assert "".join(delta.text for delta in deltas) == "thinking"
    assert deltas[-1].finish_reason == "tool_calls"
    assert deltas[-1].tool_calls == EXPECTED
    assert deltas[-1].usage is not None and deltas[-1].usage.completion_tokens > 0


async def test_streamed_parallel_calls_without_ids_stay_apart(
    scripted: ScriptedChatServer, provider: OpenAIProvider
) -> None:
    """Whole calls at ``index`` 0 without ids (as some OpenAI-compatible servers send them):
    each fragment that brings a name starts a new call."""
    scripted.load([PARALLEL], style="same_index_no_id")
    deltas = [delta async for delta in provider.stream_chat("agent-model", ASK, OPTIONS)]
    calls = deltas[-1].tool_calls or []
    assert [(c.name, c.raw_arguments) for c in calls] == [
        (call.name, call.raw()) for call in PARALLEL.calls
    ]
    assert calls[2].arguments is None and calls[0].arguments == {"path": "a.txt"}


async def test_the_fake_refuses_unanswered_tool_calls_as_openai_does(
    scripted: ScriptedChatServer, provider: OpenAIProvider, caplog: pytest.LogCaptureFixture
) -> None:
    scripted.load([Turn("x")])
    call = ToolCall.of("call_1", "f", {})
    unanswered = [*ASK, ChatMessage("assistant", "", tool_calls=[call]), ChatMessage("user", "?")]
    with pytest.raises(ProviderBadRequest):
        await provider.chat("agent-model", unanswered, OPTIONS)
    stray = [*ASK, ChatMessage("tool", "r", tool_call_id="call_9")]
    with pytest.raises(ProviderBadRequest):
        await provider.chat("agent-model", stray, OPTIONS)
    assert "must be followed by tool messages" in caplog.text
    assert "must be a response to a preceding message" in caplog.text
