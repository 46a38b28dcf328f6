"""Issue 15, defects 16 and 17: Ollama's own documented ``curl`` calls work as written
(``curl URL -d '{...}'`` sends a form type; ember, like Ollama, reads the body as JSON), a
body that is not JSON is a 400 in Ollama's shape, and ``/api/show`` lists capabilities.

The bodies are the examples of Ollama's API documentation, with this stack's model names
(``chat`` for ``llama3.2``, ``fake/embed-model`` for ``all-minilm``)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import ollama
import pytest
from fastapi.testclient import TestClient

from ember.chat import Capability, ModelInfo
from ember.serve_app import create_app
from ember.serve_app.compat.ollama import ollama_capabilities
from tests.serve_app_llm.conftest import Stack
from tests.support.app import migrated_context

GENERATE = """{
  "model": "chat",
  "prompt": "Why is the sky blue?"
}"""
CHAT = """{
  "model": "chat",
  "messages": [
    {
      "role": "user",
      "content": "why is the sky blue?"
    }
  ]
}"""
GENERATE_WHOLE = """{
  "model": "chat",
  "prompt": "Why is the sky blue?",
  "stream": false
}"""
SHOW = """{
  "model": "chat"
}"""
EMBED = """{
  "model": "fake/embed-model",
  "input": "Why is the sky blue?"
}"""
FORM = "application/x-www-form-urlencoded"
"""What ``curl -d`` sends as the Content-Type."""


def curl_like(stack: Stack, path: str, body: str, content_type: str | None) -> httpx.Response:
    """``body`` posted as curl posts ``-d``: as given, with ``content_type`` (or none)."""
    headers = {"Authorization": f"Bearer {stack.key}"}
    if content_type is not None:
        headers["Content-Type"] = content_type
    return httpx.post(f"{stack.url}{path}", content=body.encode(), headers=headers, timeout=20)


def lines(response: httpx.Response) -> list[dict[str, Any]]:
    return [json.loads(line) for line in response.text.splitlines() if line]


@pytest.mark.parametrize("content_type", [FORM, None, "text/plain"])
def test_generate_as_documented(stack: Stack, content_type: str | None) -> None:
    reply = curl_like(stack, "/api/generate", GENERATE, content_type)
    assert reply.status_code == 200, reply.text
    parts = lines(reply)
    assert parts[-1]["done"] is True and parts[-1]["done_reason"] == "stop"
    assert "".join(p["response"] for p in parts) == "Echo: Why is the sky blue?"


@pytest.mark.parametrize("content_type", [FORM, None])
def test_chat_as_documented(stack: Stack, content_type: str | None) -> None:
    reply = curl_like(stack, "/api/chat", CHAT, content_type)
    assert reply.status_code == 200, reply.text
    parts = lines(reply)
    assert parts[-1]["done"] is True
    text = "".join(p["message"]["content"] for p in parts)
    assert text == "Echo: why is the sky blue?"


def test_a_whole_answer_show_and_embed_as_documented(stack: Stack) -> None:
    whole = curl_like(stack, "/api/generate", GENERATE_WHOLE, FORM)
    assert whole.json()["response"] == "Echo: Why is the sky blue?"
    shown = curl_like(stack, "/api/show", SHOW, FORM)
    assert shown.status_code == 200 and shown.json()["capabilities"] == ["completion", "tools"]
    embedded = curl_like(stack, "/api/embed", EMBED, FORM)
    assert embedded.status_code == 200 and len(embedded.json()["embeddings"]) == 1


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_the_curl_command_itself(stack: Stack) -> None:
    done = subprocess.run(
        [
            "curl",
            "-s",
            f"{stack.url}/api/generate",
            "-H",
            f"Authorization: Bearer {stack.key}",
            "-d",
            GENERATE,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    parts = [json.loads(line) for line in done.stdout.splitlines() if line]
    assert parts and parts[-1]["done"] is True, done.stdout
    assert "".join(p["response"] for p in parts) == "Echo: Why is the sky blue?"


@pytest.mark.parametrize("body", ["model=chat&prompt=hi", "{not json", "\xff\xfe"])
def test_a_body_that_is_not_json_is_a_400_in_ollamas_shape(stack: Stack, body: str) -> None:
    for content_type in (FORM, None):
        reply = curl_like(stack, "/api/generate", body, content_type)
        assert reply.status_code == 400
        assert reply.json()["code"] == "bad_request"
        assert reply.json()["error"].startswith("the body is not JSON")
    assert stack.router.seen == []


def test_a_body_typed_json_that_is_not_json_stays_a_400(stack: Stack) -> None:
    reply = curl_like(stack, "/api/generate", "{not json", "application/json")
    assert reply.status_code == 400 and set(reply.json()) == {"error", "code"}


def test_a_cross_site_form_post_is_still_refused(tmp_path: Path) -> None:
    """What the strict Content-Type used to guard against: a page on another origin posting a
    form to a loopback ember. The front door refuses its Origin before any body is read."""
    with migrated_context(tmp_path) as context:
        client = TestClient(create_app(context), client=("127.0.0.1", 50000))
        reply = client.post(
            "/api/generate",
            content=GENERATE_WHOLE.encode(),
            headers={"Content-Type": FORM, "Origin": "http://evil.example"},
        )
    assert reply.status_code == 403
    assert reply.json()["code"] == "origin_not_allowed"


def test_show_lists_capabilities(stack: Stack) -> None:
    stack.directory.models += [
        ModelInfo("spare/echo-model", "spare"),
        ModelInfo("spare/minilm", "spare", details={"kind": "embedding"}),
        ModelInfo("gone/model", "gone"),
    ]
    api = stack.keep(
        ollama.Client(host=stack.url, headers={"Authorization": f"Bearer {stack.key}"})
    )
    assert api.show("chat").capabilities == ["completion", "tools"]  # its first candidate's
    assert api.show("fake/echo-model").capabilities == ["completion", "tools"]
    assert api.show("fake/embed-model").capabilities == ["embedding"]
    assert api.show("spare/echo-model").capabilities == ["completion", "tools", "embedding"]
    assert api.show("spare/minilm").capabilities == ["embedding"]
    raw = curl_like(stack, "/api/show", '{"model": "gone/model"}', FORM).json()
    assert raw["capabilities"] == []


def test_capabilities_in_ollamas_words() -> None:
    local = {Capability.CHAT, Capability.GENERATE, Capability.STREAM}  # llama.cpp hosts
    assert ollama_capabilities(local, {}) == ["completion"]
    assert ollama_capabilities(set(Capability), {}) == ["completion", "tools", "embedding"]
    assert ollama_capabilities({Capability.EMBED}, {}) == ["embedding"]
    assert ollama_capabilities(set(Capability), {"kind": "embedding"}) == ["embedding"]
    assert ollama_capabilities({Capability.CHAT}, {"kind": "embedding"}) == []
