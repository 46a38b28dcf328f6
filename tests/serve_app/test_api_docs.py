"""Issue 15, defect 17: ``/docs`` works with no way out. Every script, stylesheet and icon
the page names is served by ember itself, and each loads."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ember.serve_app import create_app
from ember.serve_app.api_docs import ASSETS
from tests.support.app import migrated_context

_REFERENCES = re.compile(r"""(?:src|href)\s*[=:]\s*["']([^"']+)["']""")
_URL_STRINGS = re.compile(r"""["'](https?://[^"']+|//[^"']+)["']""")


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with migrated_context(tmp_path) as context, TestClient(create_app(context)) as client:
        yield client


def test_the_docs_page_names_only_assets_ember_serves(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    assert "text/html" in page.headers["content-type"]
    references = set(_REFERENCES.findall(page.text))
    assert references >= {f"/docs/assets/{name}" for name in ASSETS}
    assert not [url for url in _URL_STRINGS.findall(page.text)], "the page loads from elsewhere"
    assert "'/openapi.json'" in page.text or '"/openapi.json"' in page.text
    for url in references:
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert len(asset.content) > 500, url
        assert asset.headers["content-type"].split(";")[0] == ASSETS[url.rsplit("/", 1)[1]]


def test_the_script_is_swagger_ui_itself(client: TestClient) -> None:
    script = client.get("/docs/assets/swagger-ui-bundle.js")
    assert "SwaggerUIBundle" in script.text


def test_the_docs_serve_nothing_but_their_assets(client: TestClient) -> None:
    for name in ("index.html", "..%2F..%2F__init__.py", "swagger-ui.js.map", "x"):
        answer = client.get(f"/docs/assets/{name}")
        assert answer.status_code == 404, name
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["code"] == "not_found"


def test_the_docs_need_no_token_and_redoc_is_gone(client: TestClient) -> None:
    client.app.state.context.tokens.create("ci", "ci", ["admin"])
    assert client.get("/docs").status_code == 200
    assert client.get("/docs/assets/swagger-ui.css").status_code == 200
    assert client.get("/docs/oauth2-redirect").status_code == 200
    assert client.get("/redoc").status_code in (401, 404)
