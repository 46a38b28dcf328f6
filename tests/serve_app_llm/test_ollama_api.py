"""ember's ``/api`` routes driven by the official ``ollama`` client over real HTTP."""

from __future__ import annotations

import json
from typing import Any

import httpx
import ollama
import pytest

from tests.fakes.openai_fake import bag_of_words, words_of
from tests.serve_app_llm.conftest import DIM, Stack


def client(stack: Stack, token: str | None = None, **headers: str) -> ollama.Client:
    """An official client of the app, with ``token`` (by default the stack's key)."""
    auth = {"Authorization": f"Bearer {token or stack.key}"}
    return stack.keep(ollama.Client(host=stack.url, headers={**auth, **headers}, timeout=20))


def post(stack: Stack, path: str, body: Any, **headers: str) -> httpx.Response:
    auth = {"Authorization": f"Bearer {stack.key}"}
    return httpx.post(f"{stack.url}{path}", json=body, headers={**auth, **headers}, timeout=20)


def get(stack: Stack, path: str) -> httpx.Response:
    auth = {"Authorization": f"Bearer {stack.key}"}
    return httpx.get(f"{stack.url}{path}", headers=auth, timeout=20)


def lines(response: httpx.Response) -> list[dict[str, Any]]:
    return [json.loads(line) for line in response.text.splitlines() if line]


def test_chat_whole_answer(stack: Stack) -> None:
    answer = client(stack).chat(
        model="chat", messages=[{"role": "user", "content": "hello big world"}], stream=False
    )
    assert answer.message.role == "assistant"
    assert answer.message.content == "Echo: hello big world"
    assert answer.model == "chat"
    assert answer.done is True and answer.done_reason == "stop"
    assert (answer.prompt_eval_count, answer.eval_count) == (3, 4)
    assert answer.total_duration is not None and answer.total_duration > 0
    assert answer.created_at is not None and answer.created_at.endswith("Z")


def test_chat_streams_by_default(stack: Stack) -> None:
    response = post(
        stack, "/api/chat", {"model": "chat", "messages": [{"role": "user", "content": "a b c"}]}
    )
    assert response.headers["content-type"] == "application/x-ndjson"
    assert response.headers["x-ember-provider"] == "fake"
    parts = lines(response)
    assert [p["done"] for p in parts] == [False] * (len(parts) - 1) + [True]
    assert "".join(p["message"]["content"] for p in parts) == "Echo: a b c"
    final = parts[-1]
    assert final["message"]["content"] == "" and final["done_reason"] == "stop"
    assert final["eval_count"] == 4 and final["prompt_eval_count"] == 3
    assert final["total_duration"] >= final["eval_duration"] >= 0


def test_chat_stream_through_the_client(stack: Stack) -> None:
    parts = list(
        client(stack).chat(
            model="chat",
            messages=[{"role": "system", "content": "terse"}, {"role": "user", "content": "x y"}],
            stream=True,
        )
    )
    assert "".join(p.message.content or "" for p in parts) == "Echo: x y"
    assert parts[-1].done and not any(p.done for p in parts[:-1])
    assert stack.router.seen[-1].op == "stream_chat"
    assert stack.upstream.calls[-1].body["messages"][0] == {"role": "system", "content": "terse"}


def test_generate_whole_and_streamed(stack: Stack) -> None:
    api = client(stack)
    whole = api.generate(model="fake/echo-model", prompt="say it now", stream=False)
    assert whole.response == "Echo: say it now"
    assert whole.done and whole.done_reason == "stop" and whole.model == "fake/echo-model"
    assert stack.upstream.calls[-1].path == "/v1/completions"
    parts = list(api.generate(model="chat", prompt="stream me", stream=True))
    assert "".join(p.response or "" for p in parts) == "Echo: stream me"
    assert parts[-1].done and parts[-1].eval_count == 3
    assert stack.router.seen[-1].op == "stream_generate"


def test_options_and_keep_alive_map_onto_generation_options(stack: Stack) -> None:
    answer = client(stack).generate(
        model="chat",
        prompt="one two three four",
        options={
            "num_predict": 2,
            "temperature": 0.25,
            "top_p": 0.5,
            "seed": 7,
            "stop": ["four"],
            "num_ctx": 8192,
        },
        keep_alive="1h30m",
        stream=False,
    )
    assert answer.response == "Echo: one"
    assert answer.done_reason == "length"
    options = stack.router.seen[-1].options
    assert options is not None
    assert (options.max_tokens, options.temperature, options.top_p) == (2, 0.25, 0.5)
    assert (options.seed, options.stop, options.keep_alive_s) == (7, ("four",), 5400.0)
    sent = stack.upstream.calls[-1].body
    assert (sent["max_tokens"], sent["temperature"], sent["seed"]) == (2, 0.25, 7)


@pytest.mark.parametrize(
    ("keep_alive", "seconds"), [(0, 0.0), ("0", 0.0), (-1, -1.0), ("-1", -1.0), ("5m", 300.0)]
)
def test_keep_alive_forms(stack: Stack, keep_alive: Any, seconds: float) -> None:
    admin = stack.token("models:use", "admin", principal="ops")
    client(stack, admin).chat(
        model="chat", messages=[{"role": "user", "content": "x"}], keep_alive=keep_alive
    )
    options = stack.router.seen[-1].options
    assert options is not None and options.keep_alive_s == seconds


@pytest.mark.parametrize("path", ["/api/chat", "/api/generate"])
def test_keep_alive_zero_from_a_caller_without_admin_is_the_default(
    stack: Stack, path: str
) -> None:
    body = {"model": "chat", "keep_alive": 0, "stream": False}
    asked = {"messages": [{"role": "user", "content": "x"}]} if path == "/api/chat" else {}
    assert post(stack, path, {**body, **(asked or {"prompt": "x"})}).status_code == 200
    options = stack.router.seen[-1].options
    assert options is not None and options.keep_alive_s is None
    unload = post(stack, path, body).json()
    assert unload["done_reason"] == "load", "nothing was unloaded"
    assert stack.directory.loads == [("chat", None)]


def test_num_predict_minus_one_means_no_limit(stack: Stack) -> None:
    client(stack).generate(model="chat", prompt="x", options={"num_predict": -1}, stream=False)
    options = stack.router.seen[-1].options
    assert options is not None and options.max_tokens is None
    assert "max_tokens" not in stack.upstream.calls[-1].body


def test_tools_and_tool_answers(stack: Stack) -> None:
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
    answer = client(stack).chat(model="chat", messages=messages, tools=tools, stream=False)
    calls = answer.message.tool_calls
    assert calls is not None and len(calls) == 1
    assert calls[0].function.name == "lookup"
    assert calls[0].function.arguments == {"text": "please lookup ember"}
    assert stack.upstream.calls[-1].body["tools"][0]["function"]["name"] == "lookup"

    streamed = list(client(stack).chat(model="chat", messages=messages, tools=tools, stream=True))
    found = [c for p in streamed if p.message.tool_calls for c in p.message.tool_calls]
    assert [c.function.arguments for c in found] == [{"text": "please lookup ember"}]

    messages += [
        {"role": "assistant", "content": "", "tool_calls": [calls[0].model_dump()]},
        {"role": "tool", "tool_name": "lookup", "content": "a small cluster"},
    ]
    after = client(stack).chat(model="chat", messages=messages, tools=tools, stream=False)
    assert after.message.content == "Echo: a small cluster"
    sent = stack.upstream.calls[-1].body["messages"]
    assert sent[2]["tool_call_id"] == sent[1]["tool_calls"][0]["id"]
    assert json.loads(sent[1]["tool_calls"][0]["function"]["arguments"]) == {
        "text": "please lookup ember"
    }


def test_embed_and_legacy_embeddings(stack: Stack) -> None:
    api = client(stack)
    many = api.embed(model="embed", input=["red apples", "green pears"])
    assert len(many.embeddings) == 2
    for vector, text in zip(many.embeddings, ["red apples", "green pears"], strict=True):
        assert list(vector) == pytest.approx(bag_of_words(words_of(text), DIM).tolist())
    assert many.model == "embed" and many.prompt_eval_count is not None
    one = api.embed(model="embed", input="red apples")
    assert list(one.embeddings[0]) == pytest.approx(list(many.embeddings[0]))
    legacy = api.embeddings(model="embed", prompt="red apples")
    assert list(legacy.embedding) == pytest.approx(list(many.embeddings[0]))
    assert list(api.embeddings(model="embed", prompt="").embedding) == []


def test_tags_show_ps_and_version(stack: Stack) -> None:
    api = client(stack)
    tags = api.list()
    assert [m.model for m in tags.models] == ["chat", "fake/echo-model", "fake/embed-model"]
    echo = tags.models[1]
    assert (echo.digest, echo.size) == ("sha256:abc", 1234)
    assert echo.details is not None and echo.details.family == "llama"
    assert echo.details.quantization_level == "Q8_0"
    raw_tags = get(stack, "/api/tags").json()["models"]
    assert raw_tags[1]["ember"] == {"provider": "fake", "context_length": 4096, "warm": False}

    shown = api.show("fake/echo-model")
    assert shown.capabilities == ["completion", "tools"]
    assert shown.modelinfo is not None and shown.modelinfo["llama.context_length"] == 4096
    assert shown.details is not None and shown.details.parameter_size == "270M"
    legacy = post(stack, "/api/show", {"name": "chat"})
    assert legacy.status_code == 200 and legacy.json()["model_info"]["ember.provider"] == "alias"

    running = api.ps()
    assert [m.model for m in running.models] == ["gemma3-270m"]
    model = running.models[0]
    assert (model.size, model.size_vram, model.digest) == (300_000_000, 300_000_000, "sha256:def")
    assert model.expires_at is not None and model.expires_at.isoformat() == (
        "2025-01-02T03:09:05+00:00"
    )
    extra = get(stack, "/api/ps").json()["models"][0]["ember"]
    assert extra == {
        "node_id": "node-7",
        "gpu": True,
        "queue_depth": 2,
        "replicas": 2,
        "nodes": ["node-7", "node-9"],
        "loaded_at": "2025-01-02T03:04:05Z",
        "last_used_at": "2025-01-02T03:04:10Z",
    }

    version = get(stack, "/api/version")
    assert version.status_code == 200 and isinstance(version.json()["version"], str)


def test_unknown_model_is_a_404_response_error(stack: Stack) -> None:
    for call in [
        lambda: client(stack).chat(model="nope", messages=[{"role": "user", "content": "x"}]),
        lambda: list(
            client(stack).chat(
                model="nope", messages=[{"role": "user", "content": "x"}], stream=True
            )
        ),
        lambda: client(stack).show("nope"),
        lambda: client(stack).embed(model="nope", input="x"),
    ]:
        with pytest.raises(ollama.ResponseError) as caught:
            call()
        assert caught.value.status_code == 404
        assert "'nope'" in caught.value.error
    response = post(stack, "/api/generate", {"model": "nope", "prompt": "x"})
    assert response.status_code == 404
    assert response.json() == {
        "error": "no model alias or provider/model named 'nope'",
        "code": "provider_model_not_found",
    }


def test_an_empty_chat_or_prompt_loads_or_unloads_the_model(stack: Stack) -> None:
    loaded = client(stack).chat(model="chat", messages=[], keep_alive="10m")
    assert loaded.done and loaded.done_reason == "load"
    generated = client(stack).generate(model="chat", stream=False)
    assert generated.done_reason == "load" and generated.response == ""
    admin = stack.token("models:use", "admin", principal="ops")
    unloaded = client(stack, admin).generate(model="chat", keep_alive=0, stream=False)
    assert unloaded.done_reason == "unload"
    assert stack.directory.loads == [("chat", 600.0), ("chat", None), ("chat", 0.0)]
    assert stack.upstream.calls == [] and stack.router.seen == []
    with pytest.raises(ollama.ResponseError) as caught:
        client(stack).generate(model="nope", stream=False)
    assert caught.value.status_code == 404


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/chat", {"format": "json"}, "format"),
        ("/api/chat", {"format": {"type": "object"}}, "format"),
        ("/api/chat", {"think": True}, "think"),
        (
            "/api/chat",
            {"messages": [{"role": "user", "content": "x", "images": ["AAAA"]}]},
            "images",
        ),
        ("/api/generate", {"prompt": "x", "images": ["AAAA"]}, "images"),
        ("/api/generate", {"prompt": "x", "system": "you are"}, "system"),
        ("/api/generate", {"prompt": "x", "keep_alive": "soon"}, "keep_alive"),
        ("/api/generate", {"prompt": "x", "options": {"temperature": "hot"}}, "temperature"),
        ("/api/embed", {"input": "x", "dimensions": 8}, "dimensions"),
    ],
)
def test_unsupported_fields_are_a_clear_400(
    stack: Stack, path: str, body: dict[str, Any], field: str
) -> None:
    body = {"model": "chat", "messages": [{"role": "user", "content": "x"}], **body}
    response = post(stack, path, body)
    assert response.status_code == 400
    assert field in response.json()["error"]
    assert response.json()["code"] == "bad_request"
    assert stack.upstream.calls == []


def test_images_through_the_client_are_refused(stack: Stack) -> None:
    with pytest.raises(ollama.ResponseError) as caught:
        client(stack).chat(
            model="chat", messages=[{"role": "user", "content": "x", "images": [b"\x89PNG"]}]
        )
    assert caught.value.status_code == 400
    assert "images" in caught.value.error


def test_an_invalid_body_is_a_400(stack: Stack) -> None:
    response = post(stack, "/api/chat", {"model": "chat", "messages": [{"role": "robot"}]})
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "validation_failed" and "messages.0.role" in body["error"]


def test_a_json_body_is_read_whatever_its_content_type(stack: Stack) -> None:
    body = json.dumps({"model": "chat", "prompt": "x", "stream": False})
    headers = {"Authorization": f"Bearer {stack.key}"}
    form = {**headers, "Content-Type": "application/x-www-form-urlencoded"}
    formed = httpx.post(f"{stack.url}/api/generate", content=body, headers=form)
    assert formed.json()["response"] == "Echo: x"  # as Ollama reads it (issue 15)
    typed = {**headers, "Content-Type": "application/json"}
    accepted = httpx.post(f"{stack.url}/api/generate", content=body, headers=typed)
    assert accepted.json()["response"] == "Echo: x"


def test_a_failure_mid_stream_ends_with_an_error_line(stack: Stack) -> None:
    stack.upstream.break_stream_after(3)
    received: list[str] = []
    parts = client(stack).chat(
        model="chat", messages=[{"role": "user", "content": "a b c d e"}], stream=True
    )
    with pytest.raises(ollama.ResponseError) as caught:
        received.extend(part.message.content or "" for part in parts)
    assert "".join(received).startswith("Echo:")
    assert "failed after the stream started" in caught.value.error

    stack.upstream.break_stream_after(2)
    response = post(stack, "/api/generate", {"model": "chat", "prompt": "a b c d"})
    parts = lines(response)
    assert parts[-1]["code"] == "stream_interrupted" and parts[-1]["error"]
    assert not any(p.get("done") for p in parts)


def test_overrides_and_request_id_reach_the_router(stack: Stack) -> None:
    response = post(
        stack,
        "/api/chat",
        {"model": "chat", "messages": [{"role": "user", "content": "x"}], "stream": False},
        **{"X-Ember-Provider": "spare", "X-Ember-Fallback": "false", "X-Request-ID": "req-o-1"},
    )
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "req-o-1"
    assert response.headers["x-ember-provider"] == "spare"
    route = stack.router.seen[-1].route
    assert (route.provider, route.fallback, route.request_id) == ("spare", False, "req-o-1")
    assert route.principal == "app"

    client(stack).embed(model="embed", input="x")
    assert stack.router.seen[-1].route.provider is None

    body = {"model": "chat", "prompt": "x", "stream": False, "ember": {"provider": "spare"}}
    post(stack, "/api/generate", body, **{"X-Ember-Provider": "fake"})
    assert stack.router.seen[-1].route.provider == "spare"
    assert stack.router.seen[-1].route.fallback is True


def test_auth_through_the_client(stack: Stack) -> None:
    anonymous = stack.keep(ollama.Client(host=stack.url, timeout=20))
    with pytest.raises(ollama.ResponseError) as caught:
        anonymous.list()
    assert caught.value.status_code == 401
    assert "Authorization" in caught.value.error
    record, reader = stack.tokens.create("reader", "reader", ["memory:read"])
    with pytest.raises(ollama.ResponseError) as denied:
        client(stack, reader).chat(model="chat", messages=[{"role": "user", "content": "x"}])
    assert denied.value.status_code == 403
    assert "models:use" in denied.value.error
    assert stack.router.seen == []
    stack.tokens.revoke(stack.key_id)
    stack.tokens.revoke(record.id)
    with pytest.raises(ollama.ResponseError) as latched:
        anonymous.chat(model="chat", messages=[{"role": "user", "content": "x"}], stream=False)
    assert latched.value.status_code == 401, "the dev bypass stays off once tokens existed"
    assert stack.router.seen == []


# --- tool calls the wire must carry as they are ---------------------------------------------

LOOKUP = [{"type": "function", "function": {"name": "lookup", "parameters": {}}}]
ASK_LOOKUP = [{"role": "user", "content": "please lookup ember"}]


def test_parallel_tool_calls_sent_at_index_0_stay_apart(stack: Stack) -> None:
    stack.upstream.tool_arguments = ['{"text": "a"}', '{"text": "b"}']
    stack.upstream.same_index = True
    streamed = client(stack).chat(model="chat", messages=ASK_LOOKUP, tools=LOOKUP, stream=True)
    found = [c for p in streamed if p.message.tool_calls for c in p.message.tool_calls]
    assert [c.function.arguments for c in found] == [{"text": "a"}, {"text": "b"}]
    whole = client(stack).chat(model="chat", messages=ASK_LOOKUP, tools=LOOKUP, stream=False)
    assert whole.message.tool_calls is not None
    assert [c.function.arguments for c in whole.message.tool_calls] == [
        {"text": "a"},
        {"text": "b"},
    ]


def test_tool_arguments_that_are_not_json_are_a_provider_error_quoting_them(stack: Stack) -> None:
    """Ollama's shape carries arguments as an object only: the answer is a 502 (a last error
    line, once streaming) naming the call and quoting what the model wrote, never a 500."""
    broken = '{"text": "ember'
    stack.upstream.tool_arguments = [broken]
    body = {"model": "chat", "messages": ASK_LOOKUP, "tools": LOOKUP}
    whole = post(stack, "/api/chat", {**body, "stream": False})
    assert whole.status_code == 502
    assert whole.json()["code"] == "provider_error"
    assert "'lookup'" in whole.json()["error"] and repr(broken) in whole.json()["error"]
    streamed = post(stack, "/api/chat", body)
    assert streamed.status_code == 200
    last = lines(streamed)[-1]
    assert last["code"] == "provider_error" and repr(broken) in last["error"]


def test_tool_call_arguments_sent_as_text_go_on_as_written(stack: Stack) -> None:
    history = [
        *ASK_LOOKUP,
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"function": {"name": "lookup", "arguments": '{"text": "ember"}'}}],
        },
        {"role": "tool", "tool_name": "lookup", "content": "a small cluster"},
    ]
    response = post(stack, "/api/chat", {"model": "chat", "messages": history, "stream": False})
    assert response.status_code == 200
    sent = stack.upstream.calls[-1].body["messages"][1]["tool_calls"]
    assert sent == [
        {
            "id": "call_1_0",
            "type": "function",
            "function": {"name": "lookup", "arguments": '{"text": "ember"}'},
        }
    ]


def test_a_tool_call_whose_function_is_no_object_is_a_400(stack: Stack) -> None:
    history = [*ASK_LOOKUP, {"role": "assistant", "content": "", "tool_calls": [{"function": 1}]}]
    response = post(stack, "/api/chat", {"model": "chat", "messages": history, "stream": False})
    assert response.status_code == 400
    assert response.json()["code"] == "bad_request"
