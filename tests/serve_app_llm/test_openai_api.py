"""ember's ``/v1`` routes driven by the official ``openai`` client over real HTTP."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest

from tests.fakes.openai_fake import bag_of_words, words_of
from tests.serve_app_llm.conftest import DIM, Stack


def client(stack: Stack, token: str | None = None, **kwargs: Any) -> openai.OpenAI:
    """An official client of the app, with ``token`` (by default the stack's key)."""
    return stack.keep(
        openai.OpenAI(
            base_url=f"{stack.url}/v1",
            api_key=token or stack.key,
            max_retries=0,
            timeout=20,
            **kwargs,
        )
    )


def post(stack: Stack, path: str, body: Any, **kwargs: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {stack.key}", **kwargs.pop("headers", {})}
    return httpx.post(f"{stack.url}{path}", json=body, headers=headers, timeout=20, **kwargs)


def sse_events(response: httpx.Response) -> list[str]:
    return [line[len("data: ") :] for line in response.text.split("\n\n") if line]


def test_chat_whole_answer(stack: Stack) -> None:
    raw = client(stack).chat.completions.with_raw_response.create(
        model="chat", messages=[{"role": "user", "content": "hello big world"}]
    )
    answer = raw.parse()
    assert answer.choices[0].message.content == "Echo: hello big world"
    assert answer.choices[0].message.role == "assistant"
    assert answer.choices[0].finish_reason == "stop"
    assert answer.model == "chat"
    assert answer.object == "chat.completion"
    assert answer.usage is not None
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (3, 4)
    assert answer.usage.total_tokens == 7
    assert raw.headers["x-ember-provider"] == "fake"
    assert raw.headers["x-ember-model"] == "echo-model"


def test_chat_stream_with_usage(stack: Stack) -> None:
    chunks = list(
        client(stack).chat.completions.create(
            model="chat",
            messages=[
                {"role": "developer", "content": "be brief"},
                {"role": "user", "content": [{"type": "text", "text": "one two three"}]},
            ],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Echo: one two three"
    assert chunks[0].choices[0].delta.role == "assistant"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop" and set(finishes[:-1]) == {None}
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 4
    assert all(c.object == "chat.completion.chunk" and c.model == "chat" for c in chunks)
    sent = stack.upstream.calls[-1].body
    assert sent["messages"][0] == {"role": "system", "content": "be brief"}
    assert sent["messages"][1]["content"] == "one two three"


def test_a_stream_without_include_usage_has_no_usage_chunk(stack: Stack) -> None:
    chunks = list(
        client(stack).chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "hi"}], stream=True
        )
    )
    assert all(c.choices for c in chunks)
    assert all(getattr(c, "usage", None) is None for c in chunks)


def test_sse_wire_format_ends_with_done(stack: Stack) -> None:
    body = {"model": "chat", "messages": [{"role": "user", "content": "a b"}], "stream": True}
    response = post(stack, "/v1/chat/completions", body)
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response)
    assert events[-1] == "[DONE]"
    assert all("error" not in json.loads(e) for e in events[:-1])


def test_tools_and_tool_calls_pass_through(stack: Stack) -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "lookup",
                "description": "look a word up",
                "parameters": {"type": "object", "properties": {"text": {"type": "string"}}},
            },
        }
    ]
    messages: list[Any] = [{"role": "user", "content": "please lookup ember"}]
    answer = client(stack).chat.completions.create(model="chat", messages=messages, tools=tools)
    choice = answer.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls is not None
    call = choice.message.tool_calls[0]
    assert call.function.name == "lookup"
    assert json.loads(call.function.arguments) == {"text": "please lookup ember"}
    assert stack.upstream.calls[-1].body["tools"] == tools

    streamed = list(
        client(stack).chat.completions.create(
            model="chat", messages=messages, tools=tools, stream=True
        )
    )
    parts = [c.choices[0].delta.tool_calls for c in streamed if c.choices and c.choices[0].delta]
    calls = [call for part in parts if part for call in part]
    assert [c.function.name for c in calls] == ["lookup"]
    assert streamed[-1].choices[0].finish_reason == "tool_calls"

    messages += [
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "a small cluster"},
    ]
    after = client(stack).chat.completions.create(model="chat", messages=messages, tools=tools)
    assert after.choices[0].message.content == "Echo: a small cluster"


def test_tool_choice_none_sends_no_tools(stack: Stack) -> None:
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {}}}]
    answer = client(stack).chat.completions.create(
        model="chat",
        messages=[{"role": "user", "content": "lookup x"}],
        tools=tools,
        tool_choice="none",
    )
    assert answer.choices[0].message.content == "Echo: lookup x"
    assert "tools" not in stack.upstream.calls[-1].body


def test_completions_whole_and_streamed(stack: Stack) -> None:
    api = client(stack)
    whole = api.completions.create(model="fake/echo-model", prompt="say it", max_tokens=2)
    assert whole.choices[0].text == "Echo: say"
    assert whole.choices[0].finish_reason == "length"
    assert whole.object == "text_completion" and whole.model == "fake/echo-model"
    assert stack.upstream.calls[-1].body["max_tokens"] == 2
    chunks = list(
        api.completions.create(
            model="chat",
            prompt=["stream me"],
            stream=True,
            stream_options={"include_usage": True},
            stop=["me"],
        )
    )
    assert "".join(c.choices[0].text for c in chunks if c.choices) == "Echo: stream "
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0
    assert stack.upstream.calls[-1].body["stop"] == ["me"]


@pytest.mark.parametrize("encoding", ["float", "base64", None])
def test_embeddings(stack: Stack, encoding: str | None) -> None:
    texts = ["red apples", "green pears"]
    kwargs: dict[str, Any] = {} if encoding is None else {"encoding_format": encoding}
    found = client(stack).embeddings.create(model="embed", input=texts, **kwargs)
    assert [item.index for item in found.data] == [0, 1]
    if encoding == "base64":
        assert all(isinstance(item.embedding, str) for item in found.data)
        return
    for item, text in zip(found.data, texts, strict=True):
        expected = bag_of_words(words_of(text), DIM).tolist()
        assert item.embedding == pytest.approx(expected)
    assert found.model == "embed"
    assert found.usage.prompt_tokens > 0


def test_base64_embeddings_decode_to_the_float_vectors(stack: Stack) -> None:
    body = {"model": "embed", "input": "one text", "encoding_format": "base64"}
    encoded = post(stack, "/v1/embeddings", body).json()
    body["encoding_format"] = "float"
    plain = post(stack, "/v1/embeddings", body).json()
    import base64
    import struct

    raw = base64.b64decode(encoded["data"][0]["embedding"])
    decoded = list(struct.unpack(f"<{DIM}f", raw))
    assert decoded == pytest.approx(plain["data"][0]["embedding"])


def test_models_list_and_retrieve(stack: Stack) -> None:
    api = client(stack)
    listed = api.models.list()
    assert [m.id for m in listed.data] == ["chat", "fake/echo-model", "fake/embed-model"]
    assert [m.owned_by for m in listed.data] == ["alias", "fake", "fake"]
    one = api.models.retrieve("fake/echo-model")
    assert (one.id, one.owned_by, one.created) == ("fake/echo-model", "fake", 1700000000)
    with pytest.raises(openai.NotFoundError) as caught:
        api.models.retrieve("nope")
    assert caught.value.code == "provider_model_not_found"


def test_unknown_model_is_a_not_found_error_with_embers_code(stack: Stack) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client(stack).chat.completions.create(
            model="no-such-model", messages=[{"role": "user", "content": "x"}]
        )
    error = caught.value
    assert error.status_code == 404
    assert error.body == {
        "message": "no model alias or provider/model named 'no-such-model'",
        "type": "not_found_error",
        "param": None,
        "code": "provider_model_not_found",
    }
    assert error.response.headers["x-request-id"]
    with pytest.raises(openai.NotFoundError):
        client(stack).chat.completions.create(
            model="no-such-model", messages=[{"role": "user", "content": "x"}], stream=True
        )


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"n": 2}, "n"),
        ({"logprobs": True}, "logprobs"),
        ({"presence_penalty": 0.5}, "presence_penalty"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
        ({"tool_choice": "required"}, "tool_choice"),
    ],
)
def test_unsupported_fields_are_a_bad_request_naming_them(
    stack: Stack, extra: dict[str, Any], param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client(stack).chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "x"}], extra_body=extra
        )
    assert caught.value.code == "bad_request"
    assert caught.value.param == param
    assert stack.upstream.calls == []


def test_image_content_is_refused(stack: Stack) -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    with pytest.raises(openai.BadRequestError) as caught:
        client(stack).chat.completions.create(
            model="chat", messages=[{"role": "user", "content": [image]}]
        )
    assert caught.value.param == "messages.0.content"


def test_invalid_body_is_a_400_validation_failure(stack: Stack) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client(stack).chat.completions.create(model="chat", messages=[])
    assert caught.value.code == "validation_failed"
    assert caught.value.param == "messages"
    response = httpx.post(
        f"{stack.url}/v1/chat/completions",
        content=b'{"model": ',
        headers={"content-type": "application/json", "Authorization": f"Bearer {stack.key}"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_failed"


def test_a_failure_mid_stream_ends_with_an_error_event(stack: Stack) -> None:
    stack.upstream.break_stream_after(3)
    stream = client(stack).chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "a b c d e f"}], stream=True
    )
    received: list[str] = []
    with pytest.raises(openai.APIError) as caught:
        received.extend(chunk.choices[0].delta.content or "" for chunk in stream)
    assert "".join(received).startswith("Echo:")
    assert caught.value.code == "stream_interrupted"
    assert caught.value.type == "server_error"

    stack.upstream.break_stream_after(3)
    body = {"model": "chat", "messages": [{"role": "user", "content": "a b c d"}], "stream": True}
    response = post(stack, "/v1/chat/completions", body)
    events = sse_events(response)
    assert "[DONE]" not in events
    last = json.loads(events[-1])
    assert last["error"]["code"] == "stream_interrupted"
    assert set(last["error"]) == {"message", "type", "param", "code"}


def test_fallback_and_the_fallback_override(stack: Stack) -> None:
    stack.upstream.fail_next(500, count=2)
    raw = client(stack).chat.completions.with_raw_response.create(
        model="chat", messages=[{"role": "user", "content": "x"}]
    )
    assert raw.headers["x-ember-provider"] == "spare"
    assert raw.parse().choices[0].message.content == "Echo: x"
    with pytest.raises(openai.InternalServerError) as caught:
        client(stack, default_headers={"X-Ember-Fallback": "false"}).chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "x"}]
        )
    assert caught.value.status_code == 503
    assert caught.value.code == "no_provider_available"
    assert stack.router.seen[-1].route.fallback is False


def test_provider_override_by_header_and_body(stack: Stack) -> None:
    raw = client(stack, default_headers={"X-Ember-Provider": "spare"}).with_raw_response
    answer = raw.chat.completions.create(model="chat", messages=[{"role": "user", "content": "x"}])
    assert answer.headers["x-ember-provider"] == "spare"
    assert stack.router.seen[-1].route.provider == "spare"
    assert len(stack.spare.calls) == 1 and stack.upstream.calls == []

    client(stack, default_headers={"X-Ember-Provider": "spare"}).chat.completions.create(
        model="chat",
        messages=[{"role": "user", "content": "x"}],
        extra_body={"ember": {"provider": "fake", "fallback": False}},
    )
    route = stack.router.seen[-1].route
    assert (route.provider, route.fallback) == ("fake", False)
    assert len(stack.upstream.calls) == 1


def test_a_bad_fallback_header_is_a_bad_request(stack: Stack) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client(stack, default_headers={"X-Ember-Fallback": "maybe"}).embeddings.create(
            model="embed", input="x"
        )
    assert caught.value.param == "X-Ember-Fallback"


def test_request_id_is_echoed_and_reaches_the_router(stack: Stack) -> None:
    raw = client(stack, default_headers={"X-Request-ID": "req-openai-1"}).with_raw_response
    response = raw.completions.create(model="chat", prompt="x")
    assert response.headers["x-request-id"] == "req-openai-1"
    seen = stack.router.seen[-1]
    assert (seen.op, seen.route.request_id, seen.route.principal) == (
        "generate",
        "req-openai-1",
        "app",
    )


def test_tokens_required_without_one_is_an_authentication_error(stack: Stack) -> None:
    with pytest.raises(openai.AuthenticationError) as caught:
        client(stack).models.list(extra_headers={"Authorization": openai.Omit()})
    assert caught.value.code == "unauthorized"
    assert caught.value.type == "authentication_error"
    assert caught.value.response.headers["www-authenticate"].startswith("Bearer")
    with pytest.raises(openai.AuthenticationError):
        client(stack, token="ember_wrong").chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "x"}]
        )


def test_a_token_without_models_use_is_forbidden(stack: Stack) -> None:
    reader = stack.token("memory:read", principal="reader")
    with pytest.raises(openai.PermissionDeniedError) as caught:
        client(stack, token=reader).chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "x"}]
        )
    assert caught.value.code == "forbidden"
    assert "models:use" in caught.value.message
    assert stack.router.seen == []
    user = stack.token("models:use", "jobs:read", principal="other-app")
    answer = client(stack, token=user).chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "x"}]
    )
    assert answer.choices[0].message.content == "Echo: x"
    assert stack.router.seen[-1].route.principal == "other-app"


# --- tool calls the wire must carry as they are ---------------------------------------------

LOOKUP = [{"type": "function", "function": {"name": "lookup", "parameters": {}}}]
ASK_LOOKUP = [{"role": "user", "content": "please lookup ember"}]


def _streamed_calls(stack: Stack, body: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
    """The tool-call deltas of a streamed answer, and its finish reason."""
    response = post(stack, "/v1/chat/completions", {**body, "stream": True})
    assert response.status_code == 200
    events = sse_events(response)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    calls = [c for chunk in chunks for c in chunk["choices"][0]["delta"].get("tool_calls", [])]
    return calls, chunks[-1]["choices"][0]["finish_reason"]


def test_tool_arguments_that_are_not_json_reach_the_client_as_written(stack: Stack) -> None:
    broken = '{"text": "ember'
    stack.upstream.tool_arguments = [broken]
    body = {"model": "chat", "messages": ASK_LOOKUP, "tools": LOOKUP}
    whole = post(stack, "/v1/chat/completions", body)
    assert whole.status_code == 200
    (call,) = whole.json()["choices"][0]["message"]["tool_calls"]
    assert call == {
        "id": "call_fake_0",
        "type": "function",
        "function": {"name": "lookup", "arguments": broken},
    }
    streamed, finish = _streamed_calls(stack, body)
    assert [c["function"]["arguments"] for c in streamed] == [broken]
    assert finish == "tool_calls"

    history = [
        *ASK_LOOKUP,
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": "no idea"},
    ]
    after = post(stack, "/v1/chat/completions", {**body, "messages": history})
    assert after.status_code == 200
    assert stack.upstream.calls[-1].body["messages"][1]["tool_calls"] == [call]


def test_parallel_tool_calls_sent_at_index_0_stay_apart(stack: Stack) -> None:
    stack.upstream.tool_arguments = ['{"text": "a"}', '{"text": "b"}']
    stack.upstream.same_index = True
    body = {"model": "chat", "messages": ASK_LOOKUP, "tools": LOOKUP}
    streamed, finish = _streamed_calls(stack, body)
    assert [(c["index"], c["id"], c["function"]["arguments"]) for c in streamed] == [
        (0, "call_fake_0", '{"text": "a"}'),
        (1, "call_fake_1", '{"text": "b"}'),
    ]
    assert finish == "tool_calls"
    answer = client(stack).chat.completions.create(
        model="chat", messages=ASK_LOOKUP, tools=LOOKUP, stream=True
    )
    ids = [
        c.id for chunk in answer if chunk.choices for c in chunk.choices[0].delta.tool_calls or []
    ]
    assert ids == ["call_fake_0", "call_fake_1"]


@pytest.mark.parametrize(
    "call",
    [{"id": "c1", "function": "lookup"}, {"id": "c1", "function": {"arguments": "{}"}}],
    ids=["function-not-an-object", "no-name"],
)
def test_a_tool_call_ember_cannot_read_is_a_400(stack: Stack, call: Any) -> None:
    history = [*ASK_LOOKUP, {"role": "assistant", "content": None, "tool_calls": [call]}]
    response = post(stack, "/v1/chat/completions", {"model": "chat", "messages": history})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "messages.1.tool_calls.0" and error["code"] == "bad_request"
