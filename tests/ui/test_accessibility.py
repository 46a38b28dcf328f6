"""axe-core (the real engine, through axe-playwright-python) over every page of the UI in both
themes, and with the token dialog open: no serious or critical violation."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, Page

from tests.support.cluster import RunningEmber

pytestmark = pytest.mark.slow

BLOCKING = ("serious", "critical")


@pytest.fixture(scope="module")
def finished_job(ember_ui: RunningEmber) -> str:
    """A ``generate`` job that ran to its end, its trace kept."""
    body = {"kind": "generate", "input": {"prompt": "Name three colours.", "max_tokens": 16}}
    job = httpx.post(f"{ember_ui.url}/jobs", json=body, timeout=60).json()
    deadline = time.monotonic() + 120
    while httpx.get(f"{ember_ui.url}/jobs/{job['id']}", timeout=30).json()["state"] not in (
        "succeeded",
        "failed",
    ):
        assert time.monotonic() < deadline
        time.sleep(0.3)
    return str(job["id"])


@pytest.fixture(scope="module")
def furnished(ember_ui: RunningEmber) -> None:
    """A collection with a document and an agent profile, so their pages show content."""
    url = ember_ui.url
    made = httpx.post(f"{url}/collections", json={"name": "axe-notes"}, timeout=60)
    assert made.status_code == 201, made.text
    note = {"source": "volcano.md", "text": "Lava is molten rock from volcanoes."}
    added = httpx.post(
        f"{url}/collections/axe-notes/documents", json={"documents": [note]}, timeout=300
    )
    assert added.status_code == 200, added.text
    profile = {"name": "axe-scribe", "model": "agent", "tools": ["write_file"]}
    assert httpx.post(f"{url}/agents", json=profile, timeout=60).status_code == 201


@pytest.fixture(params=["light", "dark"])
def themed(
    request: pytest.FixtureRequest, browser: Browser, ember_ui: RunningEmber
) -> Iterator[Page]:
    context = browser.new_context(
        base_url=ember_ui.url, color_scheme=request.param, viewport={"width": 1280, "height": 800}
    )
    page = context.new_page()
    page.theme = request.param  # type: ignore[attr-defined]
    yield page
    context.close()


def violations(page: Page) -> list[str]:
    """The serious and critical violations axe finds on the page, in the theme it was asked."""
    theme = page.evaluate("document.documentElement.dataset.theme")
    assert theme == page.theme  # type: ignore[attr-defined]
    response = Axe().run(page).response
    assert response["testEngine"]["name"] == "axe-core" and response["passes"]  # it did run
    found = response["violations"]
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in found
        if v["impact"] in BLOCKING
    ]


@pytest.mark.parametrize(
    ("route", "ready"),
    [
        ("/jobs", "[data-testid=job-row]"),
        ("/jobs/new", "#kind-select"),
        ("/jobs/{job}", "[data-testid=trace-row]"),
        ("/chat?mode=ask", "#chat-collection"),
        ("/memory", "[data-testid=collection-row]"),
        ("/memory/axe-notes?q=lava", "[data-testid=explain-dense-rank]"),
        ("/memory/axe-notes?tab=context&q=lava", "[data-testid=pack-report]"),
        ("/memory/axe-notes?tab=upload", "#upload-files"),
        ("/agents", "[data-testid=agent-row]"),
        ("/agents/axe-scribe", "#run-task"),
        ("/models", "[data-testid=breaker-state]"),
        ("/vms", "h1"),
        ("/tokens", "h1"),
        ("/nowhere", "h1"),
    ],
)
def test_every_page_has_no_serious_violation(
    themed: Page, finished_job: str, furnished: None, route: str, ready: str
) -> None:
    themed.goto("/#" + route.format(job=finished_job))
    themed.locator(ready).first.wait_for()
    assert violations(themed) == []


def test_the_token_dialog_has_no_serious_violation(themed: Page) -> None:
    themed.goto("/#/jobs")
    themed.get_by_role("button", name="Token", exact=True).click()
    themed.get_by_label("API token", exact=True).wait_for()
    assert violations(themed) == []
