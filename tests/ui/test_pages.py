"""The chat, memory, agents, models and tokens pages in Chromium against the real ember of
``conftest``: a chat answer streams in token by token from the bundled model; an ask answer's
citation opens the cited passage; a file uploaded
to a new collection is found by search with its dense and keyword ranks; an agent run shows its
tool calls as they happen, the denied one marked; the models page shows where the bundled model
is and each provider's breaker; a token made on the tokens page shows its secret once and can
be revoked there."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.fakes.scripted_chat_fake import ScriptedCall, ScriptedChatServer, Turn
from tests.support.cluster import RunningEmber

pytestmark = pytest.mark.slow

RECORD_LENGTHS = """() => {
  window.answerLengths = [];
  const seen = () => {
    const answer = document.querySelector('[data-testid=chat-answer]');
    if (answer) window.answerLengths.push(answer.textContent.length);
  };
  new MutationObserver(seen).observe(document.body,
    { subtree: true, childList: true, characterData: true });
}"""


def test_a_chat_answer_streams_in_token_by_token(page: Page) -> None:
    page.goto("/#/chat?model=default&temperature=0&max_tokens=48")
    expect(page.get_by_label("Model", exact=True)).to_have_value("default")
    expect(page.get_by_label("Temperature")).to_have_value("0")
    page.evaluate(RECORD_LENGTHS)
    page.get_by_test_id("chat-input").fill(
        "Write a long story about a lighthouse keeper and the sea, in many paragraphs."
    )
    page.get_by_role("button", name="Send", exact=True).click()
    done = page.locator(".chat-turn-assistant.chat-done")
    expect(done).to_have_count(1, timeout=120_000)
    answer = page.get_by_test_id("chat-answer").text_content() or ""
    assert answer.strip(), "the model answered"
    lengths = [n for n in page.evaluate("window.answerLengths") if n > 0]
    assert len(set(lengths)) >= 3, f"the answer grew as tokens arrived: {lengths}"
    assert lengths == sorted(lengths), "text only ever grew"
    expect(done).to_contain_text("Answered by")
    assert "model=default" in page.url and "temperature=0" in page.url, "settings stay in the URL"
    assert "48 answer tokens" in (done.text_content() or ""), "max tokens was sent"


def test_an_ask_answer_cites_a_passage_that_opens_with_its_text(
    page: Page, ember_ui: RunningEmber, scripted: ScriptedChatServer
) -> None:
    url = ember_ui.url
    assert httpx.post(f"{url}/collections", json={"name": "ui-lava"}, timeout=60).is_success
    note = {"source": "lava.md", "text": "Lava is molten rock that pours out of volcanoes."}
    added = httpx.post(
        f"{url}/collections/ui-lava/documents", json={"documents": [note]}, timeout=300
    )
    assert added.status_code == 200, added.text
    scripted.load([Turn(text="Lava is molten rock [1].")])
    page.goto("/#/chat?mode=ask&model=agent&collection=ui-lava")
    page.get_by_test_id("chat-input").fill("What is lava?")
    page.get_by_role("button", name="Send", exact=True).click()
    citation = page.get_by_test_id("ask-citation")
    expect(citation).to_have_count(1, timeout=120_000)
    expect(citation).to_contain_text("[1]")
    expect(citation).to_contain_text("lava.md")
    citation.click()
    expect(citation).to_have_attribute("aria-expanded", "true")
    expect(page.get_by_test_id("citation-source")).to_have_text(note["text"])
    prompt = json.dumps(scripted.requests[-1]["messages"])
    assert note["text"] in prompt, "the passage was in the prompt the model answered from"


def test_an_uploaded_file_is_found_by_search_with_explain(page: Page, tmp_path: Path) -> None:
    page.goto("/#/memory")
    page.get_by_label("Name (required)", exact=True).fill("ui-notes")
    page.get_by_role("button", name="Create collection").click()
    expect(page.get_by_test_id("collection-row").filter(has_text="ui-notes")).to_have_count(1)
    page.goto("/#/memory/ui-notes")
    page.get_by_role("tab", name="Upload").click()
    volcano = tmp_path / "volcano.md"
    volcano.write_text("# Volcanoes\n\nLava is molten rock that erupts from volcanoes.\n")
    tides = tmp_path / "tides.md"
    tides.write_text("# Tides\n\nThe moon's pull makes the tides rise and fall.\n")
    page.get_by_label("Files (required)").set_input_files([volcano, tides])
    page.get_by_role("button", name="Upload", exact=True).click()
    progress = page.get_by_test_id("ingest-progress")
    expect(progress).to_contain_text(re.compile(r"2 / 2 files"), timeout=120_000)
    expect(progress).to_contain_text(re.compile(r"Documents added\s*2"))

    page.get_by_role("tab", name="Search").click()
    page.get_by_label("Query (required)").first.fill("molten rock")
    page.get_by_label("Explain ranks").check()
    page.get_by_role("button", name="Search", exact=True).click()
    first = page.get_by_test_id("search-hit").first
    expect(first).to_contain_text("volcano.md")
    expect(first.get_by_test_id("explain-dense-rank")).to_have_text("1")
    expect(first.get_by_test_id("explain-keyword-rank")).to_have_text("1")
    assert "q=molten" in page.url, "the query stays in the URL"


def test_an_agent_run_shows_its_tool_calls_and_the_denied_one(
    page: Page, ember_ui: RunningEmber, scripted: ScriptedChatServer
) -> None:
    profile = {"name": "ui-scribe", "model": "agent", "tools": ["write_file", "read_file"]}
    made = httpx.post(f"{ember_ui.url}/agents", json=profile, timeout=30)
    assert made.status_code == 201, made.text
    scripted.load(
        [
            Turn(calls=[ScriptedCall("write_file", {"path": "a.txt", "content": "hello"})]),
            Turn(calls=[ScriptedCall("run_command", {"command": "rm -rf /"})]),
            Turn(text="Wrote a.txt; commands are not mine to run."),
        ]
    )
    page.goto("/#/agents")
    page.get_by_test_id("agent-row").filter(has_text="ui-scribe").get_by_role("link").first.click()
    page.get_by_label(re.compile(r"^Task")).fill("Write a file, then clean up.")
    page.get_by_role("button", name="Start run").click()
    expect(page.get_by_test_id("agent-answer")).to_contain_text(
        "Wrote a.txt; commands are not mine to run.", timeout=120_000
    )
    calls = page.get_by_test_id("tool-call")
    expect(calls).to_have_count(2)
    expect(calls.nth(0)).to_contain_text("write_file")
    expect(calls.nth(0)).not_to_have_attribute("data-denied", "true")
    expect(calls.nth(1)).to_have_attribute("data-denied", "true")
    expect(calls.nth(1)).to_contain_text("denied")
    expect(page.get_by_test_id("agent-run-row")).to_have_count(1)


def test_the_models_page_shows_the_bundled_model_and_the_breakers(page: Page) -> None:
    page.goto("/#/models")
    bundled = page.get_by_test_id("model-row").filter(has_text="gemma3-270m").first
    expect(bundled).to_contain_text("sha256:")  # pinned to its digest
    expect(bundled).to_contain_text("warm")  # the bundled model loads at start
    providers = page.get_by_test_id("provider-row")
    for name in ("local", "embeddings", "scripted"):
        row = providers.filter(has_text=name).first
        expect(row.get_by_test_id("breaker-state")).to_have_text(re.compile("closed"))
    expect(page.locator("body")).not_to_contain_text("unused")  # the api key never shows


def test_a_token_made_on_the_tokens_page_shows_its_secret_once_and_is_revoked_there(
    page: Page, ember_ui: RunningEmber
) -> None:
    page.goto("/#/tokens")
    page.get_by_role("button", name="New token").click()
    page.get_by_label(re.compile(r"^Name")).fill("ui-made")
    page.locator("input[name=scope][value=admin]").check()
    page.get_by_role("button", name="Create token").click()
    secret = page.get_by_test_id("token-secret")
    expect(secret).to_have_text(re.compile(r"^ember_"))
    token = secret.text_content() or ""
    try:
        expect(page.get_by_test_id("token-row").filter(has_text="ui-made")).to_have_count(1)
        page.get_by_role("button", name="Token", exact=True).click()
        page.get_by_label("API token", exact=True).fill(token)
        page.get_by_role("button", name="Save", exact=True).click()
        page.get_by_role("button", name="Revoke token ui-made").click()
        page.get_by_role("button", name="Revoke ui-made").click()
        row = page.get_by_test_id("token-row").filter(has_text="ui-made")
        expect(row).to_contain_text(re.compile("revoked", re.I))
        page.reload()
        expect(page.get_by_test_id("token-secret")).to_have_count(0)
    finally:
        own = {"Authorization": f"Bearer {token}"}
        listed = httpx.get(f"{ember_ui.url}/tokens", headers=own, timeout=30)
        for made in listed.json().get("tokens", []) if listed.is_success else []:
            if made["name"] == "ui-made" and not made.get("revoked_at"):
                httpx.delete(f"{ember_ui.url}/tokens/{made['id']}", headers=own, timeout=30)
    assert httpx.get(f"{ember_ui.url}/jobs", timeout=30).is_success, "loopback works again"
