"""The web UI in a real browser: Debian's Chromium driven by Playwright, against a real ember
(``ember up``'s runtime: a local Ray cluster, the Serve app, the bundled model; agents get
their deterministic tool calls from the scripted chat fake, provider ``scripted``).

Playwright never downloads a browser here: it drives ``/usr/bin/chromium``. Every page is
opened on the loopback ember; nothing else is reached.
"""

from __future__ import annotations

import gc
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

from ember.serve_app.ui import UIFiles
from tests.fakes.scripted_chat_fake import ScriptedChatServer
from tests.support.cluster import RunningEmber, ember_config, running_ember

CHROMIUM = "/usr/bin/chromium"
UNBOUND_SOCKET = (
    r"ignore:Exception ignored in. <socket\.socket fd=\d+, family=2, type=1, proto=0, "
    r"laddr=\('0\.0\.0\.0', 0\)>:pytest.PytestUnraisableExceptionWarning"
)
"""A TCP socket never bound nor connected, left for the collector by something in the driver
(Ray's start-up or Playwright's, not ember: ember's server runs in Ray's workers) about once in
a dozen runs. Only that exact shape is let through, and only in the browser tests."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.filterwarnings(UNBOUND_SOCKET))


@pytest.fixture(scope="session")
def scripted() -> Iterator[ScriptedChatServer]:
    """The model agents run on in these tests (alias ``agent``), on 127.0.0.1."""
    with ScriptedChatServer(model="agent-model") as server:
        yield server


@pytest.fixture(scope="session")
def ember_ui(
    tmp_path_factory: pytest.TempPathFactory, scripted: ScriptedChatServer
) -> Iterator[RunningEmber]:
    """One ember for the UI tests: loopback without tokens (as ``local``; back again once the
    tokens a test makes are revoked), no rate limit; the bundled model, the bundled embedder
    and the scripted fake."""
    if not UIFiles().built:
        pytest.fail("the web UI is not built: run `make ui` (make test does)")
    providers = {
        "local": {"kind": "llamacpp"},
        "embeddings": {"kind": "sentence-transformers"},
        "scripted": {"kind": "openai", "base_url": scripted.base_url, "api_key": "unused"},
    }
    aliases = {"default": ["local/gemma3-270m"], "agent": ["scripted/agent-model"]}
    config = ember_config(
        tmp_path_factory.mktemp("ui-home"),
        EMBER_RAY_NUM_CPUS="2",
        EMBER_RAY_DASHBOARD="false",
        EMBER_AUTH_RATE_LIMIT_PER_S="0",
        EMBER_AUTH_LOOPBACK_AFTER_TOKENS="true",
        EMBER_PROVIDERS_INSTANCES=json.dumps(providers),
        EMBER_ROUTER_ALIASES=json.dumps(aliases),
    )
    with running_ember(config) as running:
        yield running


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"no {CHROMIUM}: install Debian's chromium (make test does)")
    launched = playwright.chromium.launch(
        executable_path=CHROMIUM,
        args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
    )
    yield launched
    launched.close()


@pytest.fixture
def context(browser: Browser, ember_ui: RunningEmber, tmp_path: Path) -> Iterator[BrowserContext]:
    made = browser.new_context(base_url=ember_ui.url, viewport={"width": 1280, "height": 800})
    made.set_default_timeout(30_000)
    yield made
    made.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


@pytest.fixture(autouse=True)
def _collected_per_test() -> Iterator[None]:
    """Collect after each browser test, so a socket or file left unclosed fails the test that
    left it, with where it was made (under ``PYTHONTRACEMALLOC``)."""
    yield
    gc.collect()
