"""``/tokens`` over HTTP: a workspace's admin manages its own workspace's tokens and nothing
else; only a cluster admin reaches every workspace or grants ``cluster:admin``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ember.auth import SqlWorkspaceRepository
from ember.serve_app import AppContext, create_app
from tests.support.app import migrated_context

REMOTE = ("203.0.113.7", 50000)


@pytest.fixture
def context(tmp_path: Path) -> Iterator[AppContext]:
    with migrated_context(tmp_path) as context:
        SqlWorkspaceRepository(context.database).create("team-b")
        yield context


def as_(
    context: AppContext, *scopes: str, workspace: str = "default", name: str = "x"
) -> TestClient:
    secret = context.tokens.create(name, name, list(scopes), workspace=workspace)[1]
    client = TestClient(create_app(context), raise_server_exceptions=False, client=REMOTE)
    client.headers["Authorization"] = f"Bearer {secret}"
    return client


def test_a_workspace_admin_manages_only_its_own_tokens(context: AppContext) -> None:
    theirs = as_(context, "admin", name="root")
    other = theirs.post("/tokens", json={"name": "ci", "scopes": ["memory:read"]}).json()
    admin_b = as_(context, "admin", workspace="team-b", name="bob")
    made = admin_b.post("/tokens", json={"name": "bot", "scopes": ["memory:read", "jobs:read"]})
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["workspace"] == "team-b" and body["token"].startswith("ember_")
    principal = context.tokens.authenticate(body["token"])
    assert (principal.name, principal.workspace) == ("bot", "team-b")
    listed = {t["name"] for t in admin_b.get("/tokens").json()["tokens"]}
    assert listed == {"bob", "bot"}, "only team-b's tokens, never a secret"
    assert "token" not in admin_b.get("/tokens").json()["tokens"][0]
    hidden = admin_b.delete(f"/tokens/{other['id']}")
    assert hidden.status_code == 404 and hidden.json()["code"] == "token_not_found"
    elsewhere = admin_b.post(
        "/tokens", json={"name": "spy", "scopes": ["admin"], "workspace": "default"}
    )
    assert elsewhere.status_code == 404 and elsewhere.json()["code"] == "not_found"
    escalate = admin_b.post("/tokens", json={"name": "up", "scopes": ["cluster:admin"]})
    assert escalate.status_code == 403
    assert escalate.json()["required_scope"] == "cluster:admin"
    revoked = admin_b.delete(f"/tokens/{body['id']}")
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    bot = TestClient(create_app(context), raise_server_exceptions=False, client=REMOTE)
    answer = bot.get("/collections", headers={"Authorization": f"Bearer {body['token']}"})
    assert answer.status_code == 401


def test_members_cannot_manage_tokens_and_a_cluster_admin_sees_every_workspace(
    context: AppContext,
) -> None:
    member = as_(context, "memory:read", "memory:write", "jobs:write", name="m")
    refused = member.get("/tokens")
    assert refused.status_code == 403 and refused.json()["required_scope"] == "admin"
    as_(context, "admin", workspace="team-b", name="bob")
    operator = as_(context, "cluster:admin", name="op")
    seen = {(t["name"], t["workspace"]) for t in operator.get("/tokens").json()["tokens"]}
    assert {("m", "default"), ("bob", "team-b"), ("op", "default")} <= seen
    made = operator.post(
        "/tokens", json={"name": "ops-b", "scopes": ["cluster:admin"], "workspace": "team-b"}
    )
    assert made.status_code == 201 and made.json()["workspace"] == "team-b"
