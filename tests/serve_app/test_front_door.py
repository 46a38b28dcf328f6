"""The front door over real HTTP, doing what an attacker does: a page that rebinds its DNS name
to 127.0.0.1 (forged ``Host``), a page on another origin (forged ``Origin``), a revoked last
token, and a client that keeps guessing tokens."""

from __future__ import annotations

import httpx
import pytest

from tests.serve_app.conftest import Ember, Serve, problem, raw_request, upgrade_lines

REBOUND = "attacker.example"


@pytest.fixture
def ember(serve: Serve) -> Ember:
    return serve(
        EMBER_SERVER_ALLOWED_HOSTS="ember.internal",
        EMBER_SERVER_ALLOWED_ORIGINS="http://app.example:3000",
    )


def test_a_rebound_host_is_421_on_http_routes(ember: Ember) -> None:
    for method, path, body in [
        ("GET", "/jobs", None),
        ("GET", "/v1/models", None),
        ("POST", "/collections", {"name": "stolen"}),
        ("GET", "/health", None),
    ]:
        reply = httpx.request(
            method, f"{ember.url}{path}", json=body, headers={"Host": f"{REBOUND}:{ember.port}"}
        )
        assert reply.status_code == 421, (path, reply.text)
        assert reply.headers["content-type"] == "application/problem+json"
        document = reply.json()
        assert document["code"] == "host_not_allowed" and document["instance"] == path
        assert document["request_id"] == reply.headers["x-request-id"]
    assert httpx.get(f"{ember.url}/collections").json()["items"] == [], "nothing was created"


def test_a_rebound_host_is_421_on_a_websocket_upgrade(ember: Ember) -> None:
    status, headers, body = raw_request(ember.port, upgrade_lines("/jobs/any/ws", REBOUND))
    assert problem(status, headers, body)["code"] == "host_not_allowed"
    assert status == 421


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "localhost:{port}", "[::1]:{port}", "ember.internal", "EMBER.internal."]
)
def test_embers_own_names_pass(ember: Ember, host: str) -> None:
    reply = httpx.get(f"{ember.url}/jobs", headers={"Host": host.format(port=ember.port)})
    assert reply.status_code == 200, reply.text


def test_a_forged_origin_is_403(ember: Ember) -> None:
    for origin in ["http://evil.example", f"http://127.0.0.1:{ember.port + 1}", "null"]:
        reply = httpx.post(
            f"{ember.url}/collections", json={"name": "x"}, headers={"Origin": origin}
        )
        assert reply.status_code == 403, origin
        assert reply.json()["code"] == "origin_not_allowed"
        assert "access-control-allow-origin" not in reply.headers
    lines = upgrade_lines("/jobs/any/ws", f"127.0.0.1:{ember.port}", Origin="http://evil.example")
    status, headers, body = raw_request(ember.port, lines)
    assert status == 403 and problem(status, headers, body)["code"] == "origin_not_allowed"
    assert httpx.get(f"{ember.url}/collections").json()["items"] == []


def test_the_same_origin_and_configured_origins_pass(ember: Ember) -> None:
    own = {"Origin": f"http://127.0.0.1:{ember.port}"}
    reply = httpx.post(f"{ember.url}/collections", json={"name": "mine"}, headers=own)
    assert reply.status_code == 201
    assert "access-control-allow-origin" not in reply.headers, "same origin needs no CORS"
    named = {"Host": "localhost", "Origin": "http://localhost"}
    assert httpx.get(f"{ember.url}/collections", headers=named).status_code == 200
    app = {"Origin": "http://app.example:3000"}
    reply = httpx.get(f"{ember.url}/collections", headers=app)
    assert reply.status_code == 200
    assert reply.headers["access-control-allow-origin"] == "http://app.example:3000"
    preflight = httpx.options(
        f"{ember.url}/collections",
        headers={
            **app,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "http://app.example:3000"
    assert "authorization" in preflight.headers["access-control-allow-headers"].lower()


def test_cors_is_closed_by_default(serve: Serve) -> None:
    ember = serve()
    preflight = httpx.options(
        f"{ember.url}/collections",
        headers={"Origin": "http://app.example:3000", "Access-Control-Request-Method": "POST"},
    )
    assert preflight.status_code == 403
    assert preflight.json()["code"] == "origin_not_allowed"
    assert "access-control-allow-origin" not in preflight.headers


def test_revoking_the_last_token_does_not_reopen_the_bypass(ember: Ember) -> None:
    assert httpx.get(f"{ember.url}/collections").status_code == 200, "the dev bypass"
    token_id, secret = ember.token("memory:read")
    assert httpx.get(f"{ember.url}/collections").status_code == 401
    bearer = {"Authorization": f"Bearer {secret}"}
    assert httpx.get(f"{ember.url}/collections", headers=bearer).status_code == 200
    ember.context.tokens.revoke(token_id)
    reply = httpx.get(f"{ember.url}/collections")
    assert reply.status_code == 401 and reply.json()["code"] == "unauthorized"
    assert httpx.post(f"{ember.url}/collections", json={"name": "x"}).status_code == 401


def test_requests_without_valid_credentials_are_limited_per_address(serve: Serve) -> None:
    ember = serve(
        EMBER_AUTH_ANONYMOUS_RATE_LIMIT_PER_S="0.001", EMBER_AUTH_ANONYMOUS_RATE_LIMIT_BURST="3"
    )
    _, secret = ember.token("memory:read")
    wrong = {"Authorization": "Bearer ember_guessed"}
    assert httpx.get(f"{ember.url}/collections").status_code == 401
    assert httpx.get(f"{ember.url}/collections", headers=wrong).status_code == 401
    assert httpx.get(f"{ember.url}/jobs").status_code == 401, "the third refusal is the burst"
    reply = httpx.get(f"{ember.url}/collections", headers=wrong)
    assert reply.status_code == 429 and reply.json()["code"] == "rate_limited"
    assert int(reply.headers["retry-after"]) >= 1
    good = httpx.get(f"{ember.url}/collections", headers={"Authorization": f"Bearer {secret}"})
    assert good.status_code == 200, "a valid token from the same address still passes"
