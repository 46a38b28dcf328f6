"""The Jobs pages in Chromium against a real ember with the bundled model: a job submitted from
the form generated from its kind's schema streams its tokens, and the text on the page equals
the job's stored result after a reload and a network outage mid-stream; a running job is
cancelled from its page; a revoked token is shown as such, with its code and request id."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page, expect

from tests.support.cluster import RunningEmber

pytestmark = pytest.mark.slow

JOB_URL = re.compile(r"#/jobs/([0-9a-f]{32})$")
LONG_PROMPT = "Write a long story about a lighthouse keeper and the sea, in many paragraphs."


def submit_generate(page: Page, prompt: str, max_tokens: int) -> str:
    """Submit a ``generate`` job through the form; its id (the page is then its detail)."""
    page.goto("/#/jobs/new")
    page.get_by_label("Kind").select_option("generate")
    page.get_by_label(re.compile(r"^Prompt\b")).fill(prompt)
    page.get_by_label(re.compile(r"^Max Tokens\b")).fill(str(max_tokens))
    page.get_by_role("button", name="Submit").click()
    page.wait_for_url(JOB_URL, wait_until="commit", timeout=120_000)  # a loaded machine: slow
    found = JOB_URL.search(page.url)
    assert found is not None
    return found.group(1)


def events(ember_ui: RunningEmber, job_id: str) -> list[str]:
    """The job's stored event types, in order."""
    answer = httpx.get(f"{ember_ui.url}/jobs/{job_id}/events", timeout=60)
    return re.findall(r"^event: (\w+)$", answer.text, re.M)


def test_every_token_arrives_once_through_a_reload_and_an_outage(
    page: Page, context: BrowserContext, ember_ui: RunningEmber
) -> None:
    job_id = submit_generate(page, LONG_PROMPT, 400)
    output = page.get_by_test_id("job-output")
    expect(output).not_to_have_text("")
    page.reload()
    expect(output).not_to_have_text("")
    state = page.get_by_test_id("job-state")
    expect(state).to_have_text(re.compile("running"))  # the outage is mid-stream
    context.set_offline(True)
    page.wait_for_timeout(2_000)
    context.set_offline(False)
    expect(state).to_have_text(re.compile("succeeded"), timeout=180_000)
    result = httpx.get(f"{ember_ui.url}/jobs/{job_id}/result", timeout=30).json()["result"]
    expect(output).to_have_text(result["text"], use_inner_text=False)
    assert output.text_content() == result["text"]
    assert events(ember_ui, job_id).count("token") > 10


def test_a_running_job_is_cancelled_from_its_page(page: Page, ember_ui: RunningEmber) -> None:
    job_id = submit_generate(page, LONG_PROMPT, 1000)
    expect(page.get_by_test_id("job-output")).not_to_have_text("")
    page.get_by_role("button", name="Cancel job").click()
    expect(page.get_by_test_id("job-state")).to_have_text(re.compile("cancel"), timeout=60_000)
    final = httpx.get(f"{ember_ui.url}/jobs/{job_id}", timeout=30).json()
    assert final["state"] in ("cancelling", "cancelled")


def test_a_revoked_token_says_so_with_its_code_and_request_id(
    page: Page, ember_ui: RunningEmber
) -> None:
    made = httpx.post(
        f"{ember_ui.url}/tokens", json={"name": "ui-test", "scopes": ["admin"]}, timeout=30
    )
    assert made.status_code == 201, made.text
    token = made.json()
    own = {"Authorization": f"Bearer {token['token']}"}
    revoked = httpx.delete(f"{ember_ui.url}/tokens/{token['id']}", headers=own, timeout=30)
    assert revoked.is_success, revoked.text
    page.goto("/#/jobs")
    page.get_by_role("button", name="Token", exact=True).click()
    page.get_by_label("API token", exact=True).fill(token["token"])
    page.get_by_role("button", name="Save", exact=True).click()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("unauthorized")
    expect(alert).to_contain_text(re.compile(r"expired|revoked", re.I))
    expect(alert).to_contain_text(re.compile(r"[0-9a-f-]{32,36}"))
