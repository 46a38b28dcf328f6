"""The usage an answer reports and the usage row the router wrote are the same numbers, whether
the provider counted the tokens or reported none (and ember estimated them)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from ember.providers.usage import estimate_tokens
from tests.serve_app_llm.conftest import Stack

QUESTION = "how many tokens does this question take"
MESSAGES = [{"role": "user", "content": QUESTION}]


def post(stack: Stack, path: str, body: dict[str, Any]) -> httpx.Response:
    auth = {"Authorization": f"Bearer {stack.key}"}
    response = httpx.post(f"{stack.url}{path}", json=body, headers=auth, timeout=20)
    assert response.status_code == 200, response.text
    return response


def row(stack: Stack) -> tuple[int, int]:
    (entry,) = stack.usage.list()
    assert (entry.provider, entry.model, entry.principal) == ("fake", "echo-model", "app")
    return entry.prompt_tokens, entry.completion_tokens


def openai_usage(stack: Stack, path: str, body: dict[str, Any]) -> tuple[int, int]:
    if not body.get("stream"):
        usage = post(stack, path, body).json()["usage"]
    else:
        body = {**body, "stream_options": {"include_usage": True}}
        events = [e.removeprefix("data: ") for e in post(stack, path, body).text.split("\n\n") if e]
        assert events[-1] == "[DONE]"
        usage = json.loads(events[-2])["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    return usage["prompt_tokens"], usage["completion_tokens"]


def ollama_usage(stack: Stack, path: str, body: dict[str, Any]) -> tuple[int, int]:
    response = post(stack, path, body)
    last = [json.loads(line) for line in response.text.splitlines() if line][-1]
    assert last["done"] is True
    return last["prompt_eval_count"], last["eval_count"]


CALLS = [
    ("openai-chat", openai_usage, "/v1/chat/completions", {"messages": MESSAGES}),
    ("openai-completion", openai_usage, "/v1/completions", {"prompt": QUESTION}),
    ("ollama-chat", ollama_usage, "/api/chat", {"messages": MESSAGES}),
    ("ollama-generate", ollama_usage, "/api/generate", {"prompt": QUESTION}),
]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("reports", [True, False], ids=["counted", "not-reported"])
@pytest.mark.parametrize(("name", "read", "path", "body"), CALLS, ids=[c[0] for c in CALLS])
def test_the_answer_and_the_usage_row_agree(
    stack: Stack, name: str, read: Any, path: str, body: dict[str, Any], stream: bool, reports: bool
) -> None:
    stack.upstream.report_usage = reports
    answered = read(stack, path, {"model": "fake/echo-model", **body, "stream": stream})
    assert answered == row(stack)
    answer_text = f"Echo: {QUESTION}"
    if reports:
        assert answered == (len(QUESTION.split()), len(answer_text.split()))
    else:
        assert answered == (estimate_tokens([QUESTION]), estimate_tokens([answer_text]))
