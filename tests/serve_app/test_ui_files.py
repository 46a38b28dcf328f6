"""The web UI's page and assets as ember serves them: the page at ``/`` (never cached), hashed
assets under ``/ui/assets/`` (cached, gzip-compressed for clients that take it), a policy that
keeps the page to its own origin, no way out of the build folder, a clear 503 where nothing
was built, and the real build's first load under its size budget."""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from ember.serve_app.api import create_app
from ember.serve_app.problems import install_problem_handlers
from ember.serve_app.ui import ASSETS_PATH, UIFiles, ui_router
from tests.support.app import migrated_context

PAGE = '<!doctype html><script type="module" src="/ui/assets/app-1a2b.js"></script>'
SCRIPT = "console.log('ember');\n" * 200
FIRST_LOAD_BUDGET = 300 * 1024
"""The most the first load of ``/`` may transfer, gzip-compressed (issue: under 300 KB)."""


def ui_app(root: Path) -> TestClient:
    app = FastAPI()
    install_problem_handlers(app)
    app.include_router(ui_router(UIFiles(root)))
    return TestClient(app)


@pytest.fixture
def built(tmp_path: Path) -> Path:
    (tmp_path / "assets").mkdir()
    (tmp_path / "index.html").write_text(PAGE)
    (tmp_path / "assets" / "app-1a2b.js").write_text(SCRIPT)
    (tmp_path / "secret.txt").write_text("not an asset")
    return tmp_path


def test_the_page_is_served_uncached_within_its_own_origin(built: Path) -> None:
    page = ui_app(built).get("/")
    assert page.status_code == 200 and page.text == PAGE
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"] == "no-cache"
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy


def test_assets_are_cached_for_good_and_compressed_for_who_takes_it(built: Path) -> None:
    client = ui_app(built)
    packed = client.get(f"{ASSETS_PATH}/app-1a2b.js", headers={"Accept-Encoding": "gzip"})
    assert packed.status_code == 200 and packed.text == SCRIPT  # httpx undoes the gzip
    assert packed.headers["content-encoding"] == "gzip"
    assert int(packed.headers["content-length"]) < len(SCRIPT) / 10
    assert packed.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert "javascript" in packed.headers["content-type"]
    plain = client.get(f"{ASSETS_PATH}/app-1a2b.js", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers and plain.content == SCRIPT.encode()


@pytest.mark.parametrize("name", ["missing.js", "..%2Fsecret.txt", ".hidden", "%2e%2e"])
def test_nothing_outside_the_assets_is_served(built: Path, name: str) -> None:
    answer = ui_app(built).get(f"{ASSETS_PATH}/{name}")
    assert answer.status_code == 404 and answer.json()["code"] == "not_found"
    assert "not an asset" not in answer.text


def test_without_a_build_the_page_says_how_to_make_one(tmp_path: Path) -> None:
    answer = ui_app(tmp_path).get("/")
    assert answer.status_code == 503
    assert answer.json()["code"] == "ui_not_built" and "make up" in answer.json()["detail"]


@pytest.fixture
def app_client(tmp_path: Path) -> Iterator[TestClient]:
    with migrated_context(tmp_path) as context, TestClient(create_app(context)) as client:
        yield client


def test_the_real_build_loads_under_its_budget_without_a_token(app_client: TestClient) -> None:
    if not UIFiles().built:
        pytest.fail("the web UI is not built: run `make ui` (make test does)")
    page = app_client.get("/", headers={"Accept-Encoding": "gzip"})
    assert page.status_code == 200
    referenced = re.findall(r'(?:src|href)="(/ui/assets/[^"]+)"', page.text)
    assert any(path.endswith(".js") for path in referenced), page.text
    total = len(gzip.compress(page.content))
    for path in referenced:
        asset = app_client.get(path, headers={"Accept-Encoding": "gzip"})
        assert asset.status_code == 200, path
        total += int(asset.headers["content-length"])
    assert total < FIRST_LOAD_BUDGET
    for path in referenced:
        text = app_client.get(path).text
        # any host but loopback and the XML namespaces is a URL the page might fetch
        hosts = re.findall(r"https?://([A-Za-z0-9][A-Za-z0-9.-]*)", text)
        assert set(hosts) <= {"127.0.0.1", "localhost", "www.w3.org"}, (path, hosts)
