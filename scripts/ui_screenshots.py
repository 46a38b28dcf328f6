"""Screenshots of the web UI's pages for docs/ui.md, taken in Chromium from a running ember.

    make up                                   # in another terminal
    .venv/bin/python scripts/ui_screenshots.py [--url http://127.0.0.1:8000] [--out docs/ui]

It submits one ``generate`` job, makes a collection ``ui-notes`` of two short documents and an
agent profile ``ui-scribe`` (so the pages have something to show; an existing one is kept),
asks the model one chat question on the chat page, and captures each page in the light and
the dark theme as ``{page}-{theme}.png``.
Use a token with ``--token`` (or ``$EMBER_TOKEN``) when the ember has tokens.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import httpx
from playwright.sync_api import Page, sync_playwright

CHROMIUM = "/usr/bin/chromium"
PROMPT = "Explain in three short sentences what a lighthouse keeper does."


def submit(url: str, headers: dict[str, str]) -> str:
    """Submit a ``generate`` job and wait for it to end; its id."""
    body = {"kind": "generate", "input": {"prompt": PROMPT, "max_tokens": 96}}
    job = httpx.post(f"{url}/jobs", json=body, headers=headers, timeout=60)
    job.raise_for_status()
    job_id: str = job.json()["id"]
    deadline = time.monotonic() + 300
    while httpx.get(f"{url}/jobs/{job_id}", headers=headers, timeout=60).json()["state"] not in (
        "succeeded",
        "failed",
        "cancelled",
    ):
        if time.monotonic() > deadline:
            raise SystemExit(f"job {job_id} did not finish in 300 s")
        time.sleep(0.5)
    time.sleep(1.5)  # its spans reach the trace store about a second after they end
    return job_id


NOTES = [
    {"source": "volcano.md", "text": "Lava is molten rock that erupts from volcanoes."},
    {"source": "tides.md", "text": "The moon's pull makes the tides rise and fall twice a day."},
]


def furnish(url: str, headers: dict[str, str]) -> None:
    """The collection and the profile the memory and agents pages show (kept if present)."""
    made = httpx.post(f"{url}/collections", json={"name": "ui-notes"}, headers=headers, timeout=60)
    if made.status_code == 201:
        added = httpx.post(
            f"{url}/collections/ui-notes/documents",
            json={"documents": NOTES},
            headers=headers,
            timeout=300,
        )
        added.raise_for_status()
    profile = {"name": "ui-scribe", "model": "default", "tools": ["write_file", "read_file"]}
    httpx.post(f"{url}/agents", json=profile, headers=headers, timeout=60)


def chat(page: Page) -> None:
    """Ask one question on the chat page and wait for the whole answer."""
    page.get_by_test_id("chat-input").fill(PROMPT)
    page.get_by_role("button", name="Send", exact=True).click()
    page.locator(".chat-turn-assistant.chat-done").first.wait_for(timeout=300_000)


def shoot(page: Page, route: str, path: Path, ready: str, act: str | None = None) -> None:
    page.goto(f"/#{route}")
    page.locator(ready).first.wait_for()
    if act == "chat":
        chat(page)
    page.wait_for_timeout(300)
    page.screenshot(path=str(path), full_page=True)
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--out", type=Path, default=Path("docs/ui"))
    parser.add_argument("--token", default=os.environ.get("EMBER_TOKEN"))
    args = parser.parse_args()
    headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}
    job_id = submit(args.url, headers)
    furnish(args.url, headers)
    args.out.mkdir(parents=True, exist_ok=True)
    pages: list[tuple[str, str, str, str | None]] = [
        ("jobs", "/jobs", "[data-testid=job-row]", None),
        ("submit", "/jobs/new", "#kind-select", None),
        ("job", f"/jobs/{job_id}", "[data-testid=trace-row]", None),
        ("chat", "/chat?model=default&max_tokens=96", "[data-testid=chat-input]", "chat"),
        ("memory", "/memory", "[data-testid=collection-row]", None),
        ("search", "/memory/ui-notes?q=molten+rock&explain=1", "[data-testid=search-hit]", None),
        ("agents", "/agents/ui-scribe", "#run-task", None),
        ("models", "/models", "[data-testid=provider-row]", None),
        ("vms", "/vms", "h1", None),
        ("tokens", "/tokens", "h1", None),
    ]
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        for theme in ("light", "dark"):
            context = browser.new_context(
                base_url=args.url, viewport={"width": 1280, "height": 800}, color_scheme=theme
            )
            if args.token:
                context.add_init_script(f"sessionStorage.setItem('ember.token', {args.token!r})")
            page = context.new_page()
            for name, route, ready, act in pages:
                shoot(page, route, args.out / f"{name}-{theme}.png", ready, act)
            context.close()
        browser.close()


if __name__ == "__main__":
    main()
