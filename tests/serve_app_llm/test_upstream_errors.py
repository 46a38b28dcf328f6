"""An upstream's error body never reaches ember's callers: they get ember's words.

The upstream (the fake OpenAI server) answers with an error whose message quotes a key, as
OpenAI's own 401 does; the caller goes through ember's OpenAI and Ollama routes over real
HTTP, whole and streamed, and reads what ember answered.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.serve_app_llm.conftest import Stack

LEAK = "Incorrect API key provided: sk-live-4f9c0ffee. You can find your key at internal.corp"
NO_FALLBACK = {"X-Ember-Fallback": "false"}
MESSAGES = [{"role": "user", "content": "hello"}]


def _post(stack: Stack, path: str, body: dict[str, Any]) -> httpx.Response:
    headers = {"Authorization": f"Bearer {stack.key}", **NO_FALLBACK}
    return httpx.post(f"{stack.url}{path}", json=body, headers=headers, timeout=20)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/chat/completions", {"model": "chat", "messages": MESSAGES}),
        ("/v1/chat/completions", {"model": "chat", "messages": MESSAGES, "stream": True}),
        ("/v1/completions", {"model": "chat", "prompt": "hello"}),
        ("/v1/embeddings", {"model": "embed", "input": ["hello"]}),
        ("/api/chat", {"model": "chat", "messages": MESSAGES, "stream": False}),
        ("/api/chat", {"model": "chat", "messages": MESSAGES}),
        ("/api/generate", {"model": "chat", "prompt": "hello", "stream": False}),
    ],
)
@pytest.mark.parametrize("status", [400, 401, 500])
def test_the_upstream_error_body_is_not_passed_on(
    stack: Stack, path: str, body: dict[str, Any], status: int
) -> None:
    stack.upstream.fail_next(status, message=LEAK)
    response = _post(stack, path, body)
    assert response.status_code >= 400, response.text
    assert f"the provider answered HTTP {status}" in response.text, "ember's words instead"
    assert "sk-live" not in response.text and "internal.corp" not in response.text
    assert stack.upstream.base_url not in response.text
    assert len(stack.upstream.calls) == 1, "the call did reach the upstream"
