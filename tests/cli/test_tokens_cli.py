"""``ember tokens``: create prints the secret once, list never shows it, revoke, all audited."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from ember.auth import SqlTokenRepository, hash_token
from ember.cli import app
from ember.errors import Unauthorized
from ember.storage import Database, SqlAuditLog

pytestmark = pytest.mark.slow

runner = CliRunner()


@pytest.fixture
def env(database_url: str, tmp_path: Path) -> dict[str, str]:
    return {"EMBER_DATABASE_URL": database_url, "EMBER_HOME": str(tmp_path), "COLUMNS": "250"}


def invoke(env: dict[str, str], *args: str):
    return runner.invoke(app, list(args), env=env)


def test_create_list_revoke_round_trip_with_audit(env: dict[str, str], database_url: str) -> None:
    args = "tokens create ci --scope memory:read -s jobs:write --principal ci-bot --expires-days 30"
    created = invoke(env, *args.split())
    assert created.exit_code == 0, created.output
    secret = created.stdout.strip()
    assert secret.startswith("ember_") and "\n" not in secret
    assert "only time the token is shown" in created.stderr
    assert "jobs:write, memory:read" in created.stderr

    database = Database(database_url)
    try:
        tokens = SqlTokenRepository(database)
        [record] = tokens.list()
        assert tokens.authenticate(secret).name == "ci-bot"

        listed = invoke(env, "tokens", "list")
        assert listed.exit_code == 0, listed.output
        assert record.id in listed.stdout and "ci-bot" in listed.stdout
        assert "jobs:write memory:read" in listed.stdout
        assert secret not in listed.output and hash_token(secret) not in listed.output

        revoked = invoke(env, "tokens", "revoke", record.id)
        assert revoked.exit_code == 0, revoked.output
        assert f"revoked token {record.id}" in revoked.stdout
        with pytest.raises(Unauthorized, match="revoked"):
            tokens.authenticate(secret)
        again = invoke(env, "tokens", "revoke", record.id)
        assert again.exit_code == 0 and "already revoked" in again.stdout
        unknown = invoke(env, "tokens", "revoke", "nope")
        assert unknown.exit_code == 1
        assert "error[token_not_found]: no API token has the id 'nope'" in unknown.stderr

        entries = list(reversed(SqlAuditLog(database).list(actor="cli")))
    finally:
        database.dispose()
    assert [(e.action, e.resource, e.outcome) for e in entries] == [
        ("token.create", f"token:{record.id}", "ok"),
        ("token.revoke", f"token:{record.id}", "ok"),
        ("token.revoke", f"token:{record.id}", "ok"),
        ("token.revoke", "token:nope", "error"),
    ]
    assert entries[0].detail == {
        "name": "ci",
        "principal": "ci-bot",
        "scopes": ["jobs:write", "memory:read"],
        "workspace": "default",
    }
    assert entries[1].detail["already_revoked"] is False
    assert entries[2].detail["already_revoked"] is True
    assert entries[3].detail == {"code": "token_not_found"}
    assert all(secret not in str(e) for e in entries)


def test_principal_defaults_to_the_name_and_a_failed_create_is_audited(
    env: dict[str, str], database_url: str
) -> None:
    assert invoke(env, "tokens", "create", "laptop", "-s", "admin").exit_code == 0
    refused = invoke(env, "tokens", "create", "x", "-s", "admin", "--principal", "local")
    assert refused.exit_code == 2  # bad input, as a usage error
    assert "error[validation_failed]: the principal 'local' is reserved" in refused.stderr
    database = Database(database_url)
    try:
        [record] = SqlTokenRepository(database).list()
        entries = list(reversed(SqlAuditLog(database).list(action="token.create")))
    finally:
        database.dispose()
    assert record.principal == "laptop" and record.expires_at is None
    assert [(e.resource, e.outcome) for e in entries] == [
        (f"token:{record.id}", "ok"),
        ("token", "error"),
    ]
    assert entries[1].detail["code"] == "validation_failed"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-s", "root"], "'root' is not one of"),
        ([], "Missing option '--scope'"),
        (["-s", "admin", "--expires-days", "0"], "Invalid value"),
    ],
)
def test_bad_scopes_and_expiry_are_usage_errors(
    env: dict[str, str], args: list[str], message: str
) -> None:
    result = invoke(env, "tokens", "create", "ci", *args)
    assert result.exit_code == 2
    assert message in result.output
    assert "ember_" not in result.stdout


def test_list_without_tokens(env: dict[str, str]) -> None:
    result = invoke(env, "tokens", "list")
    assert result.exit_code == 0 and "last used" in result.stdout


def test_workspaces_and_their_tokens(env: dict[str, str], database_url: str) -> None:
    assert invoke(env, "workspaces", "create", "team-b").exit_code == 0
    bad = invoke(env, "workspaces", "create", "Team B")
    assert bad.exit_code == 2 and "error[validation_failed]" in bad.stderr
    again = invoke(env, "workspaces", "create", "team-b")
    assert again.exit_code == 1 and "error[conflict]" in again.stderr
    listed = invoke(env, "workspaces", "list")
    assert "default" in listed.stdout and "team-b" in listed.stdout
    made = invoke(env, "tokens", "create", "bea", "-s", "memory:read", "--workspace", "team-b")
    assert made.exit_code == 0, made.output
    assert "in workspace 'team-b'" in made.stderr
    nowhere = invoke(env, "tokens", "create", "x", "-s", "memory:read", "--workspace", "nope")
    assert nowhere.exit_code == 1 and "error[not_found]" in nowhere.stderr
    moved = invoke(env, "tokens", "create", "bea2", "-s", "jobs:read", "--principal", "bea")
    assert moved.exit_code == 2 and "belongs to another workspace" in moved.stderr
    database = Database(database_url)
    try:
        principal = SqlTokenRepository(database).authenticate(made.stdout.strip())
        assert (principal.name, principal.workspace) == ("bea", "team-b")
        actions = [e.action for e in SqlAuditLog(database).list(actor="cli")]
        assert "workspace.create" in actions
    finally:
        database.dispose()
