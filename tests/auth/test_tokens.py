"""The token repository on SQLite and a real Postgres: hash-only storage, revoke, expiry."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from ember.auth import TOKEN_PREFIX, Scope, SqlTokenRepository
from ember.errors import TokenNotFound, Unauthorized, ValidationFailed
from ember.storage import Database

pytestmark = pytest.mark.slow


class Clocks:
    """A fake wall clock and a fake monotonic clock, moved together."""

    def __init__(self) -> None:
        self.wall = datetime(2030, 1, 1, tzinfo=UTC)
        self.mono = 100.0

    def advance(self, seconds: float) -> None:
        self.wall += timedelta(seconds=seconds)
        self.mono += seconds

    def now(self) -> datetime:
        return self.wall

    def monotonic(self) -> float:
        return self.mono


@pytest.fixture
def clocks() -> Clocks:
    return Clocks()


def repository(database: Database, clocks: Clocks, cache_s: float = 5.0) -> SqlTokenRepository:
    return SqlTokenRepository(
        database, clock=clocks.now, monotonic=clocks.monotonic, active_cache_s=cache_s
    )


def raw_rows(database: Database) -> list[tuple[object, ...]]:
    return database.run(
        lambda session: [tuple(row) for row in session.execute(text("SELECT * FROM api_tokens"))]
    )


def test_only_the_hash_is_stored(database: Database, clocks: Clocks) -> None:
    tokens = repository(database, clocks)
    record, plaintext = tokens.create("ci", "ci-bot", ["memory:read", "jobs:read"])
    assert plaintext.startswith(TOKEN_PREFIX) and len(plaintext) == len(TOKEN_PREFIX) + 43
    [row] = raw_rows(database)
    stored = " ".join(str(value) for value in row)
    assert plaintext not in stored
    assert plaintext[len(TOKEN_PREFIX) :] not in stored
    assert hashlib.sha256(plaintext.encode()).hexdigest() in row
    assert record.scopes == ("jobs:read", "memory:read")
    assert not hasattr(record, "token_hash")
    assert tokens.list() == [record]


def test_each_token_is_new(database: Database, clocks: Clocks) -> None:
    tokens = repository(database, clocks)
    secrets = set()
    for index in range(5):
        secrets.add(tokens.create(f"t{index}", "p", ["admin"])[1])
        clocks.advance(1)
    assert len(secrets) == 5
    assert [record.name for record in tokens.list()] == [f"t{i}" for i in range(5)]


def test_authenticate_returns_the_principal_and_touches_at_most_once_a_minute(
    database: Database, clocks: Clocks
) -> None:
    tokens = repository(database, clocks)
    record, plaintext = tokens.create("ci", "ci-bot", ["memory:write"])
    principal = tokens.authenticate(plaintext)
    assert principal.name == "ci-bot" and principal.token_id == record.id
    assert principal.scopes == {Scope.MEMORY_WRITE} and not principal.loopback
    first = clocks.now()
    assert tokens.list()[0].last_used_at == first
    clocks.advance(30)
    tokens.authenticate(plaintext)
    assert tokens.list()[0].last_used_at == first
    clocks.advance(31)
    tokens.authenticate(plaintext)
    assert tokens.list()[0].last_used_at == clocks.now()


@pytest.mark.parametrize("presented", ["", "ember_nope", "x" * 10_000])
def test_unknown_tokens_are_unauthorized(
    database: Database, clocks: Clocks, presented: str
) -> None:
    tokens = repository(database, clocks)
    tokens.create("ci", "ci", ["admin"])
    with pytest.raises(Unauthorized, match="invalid API token"):
        tokens.authenticate(presented)


def test_revoke_stops_the_token_everywhere_and_is_idempotent(
    database: Database, clocks: Clocks
) -> None:
    tokens = repository(database, clocks)
    other_process = repository(database, clocks)
    record, plaintext = tokens.create("ci", "ci", ["admin"])
    assert other_process.authenticate(plaintext).name == "ci"
    assert other_process.has_active_tokens()
    revoked = tokens.revoke(record.id)
    assert revoked.revoked_at == clocks.now()
    with pytest.raises(Unauthorized, match="revoked"):
        other_process.authenticate(plaintext)
    clocks.advance(10)
    assert tokens.revoke(record.id).revoked_at == revoked.revoked_at
    assert tokens.list()[0].revoked_at == revoked.revoked_at


def test_revoking_an_unknown_token(database: Database, clocks: Clocks) -> None:
    with pytest.raises(TokenNotFound, match="no API token has the id 'nope'") as caught:
        repository(database, clocks).revoke("nope")
    assert caught.value.code == "token_not_found" and caught.value.status == 404


def test_expired_tokens_are_unauthorized_and_inactive(database: Database, clocks: Clocks) -> None:
    tokens = repository(database, clocks, cache_s=0)
    _, plaintext = tokens.create(
        "ci", "ci", ["admin"], expires_at=clocks.now() + timedelta(hours=1)
    )
    assert tokens.authenticate(plaintext).name == "ci"
    assert tokens.has_active_tokens()
    clocks.advance(3600)
    with pytest.raises(Unauthorized, match="expired"):
        tokens.authenticate(plaintext)
    assert not tokens.has_active_tokens()


def test_has_active_tokens_is_cached_but_cleared_by_own_changes(
    database: Database, clocks: Clocks
) -> None:
    tokens = repository(database, clocks)
    other_process = repository(database, clocks)
    assert not tokens.has_active_tokens()
    assert not other_process.has_active_tokens()
    record, plaintext = tokens.create("ci", "ci", ["admin"])
    assert tokens.has_active_tokens()
    assert not other_process.has_active_tokens()
    assert other_process.authenticate(plaintext).name == "ci"
    clocks.advance(5)
    assert other_process.has_active_tokens()
    tokens.revoke(record.id)
    assert not tokens.has_active_tokens()


@pytest.mark.parametrize(
    ("name", "principal", "scopes", "expires_in_s", "message"),
    [
        ("ci", "ci", ["root"], None, "unknown scope"),
        ("ci", "ci", [], None, "at least one scope"),
        ("ci", "local", ["admin"], None, "'local' is reserved"),
        ("ci", "cli", ["admin"], None, "'cli' is reserved"),
        ("", "ci", ["admin"], None, "name must be 1 to 128"),
        ("ci", "p" * 129, ["admin"], None, "principal must be 1 to 128"),
        ("ci", "ci", ["admin"], 0, "in the future"),
    ],
)
def test_create_validates(
    database: Database,
    clocks: Clocks,
    name: str,
    principal: str,
    scopes: list[str],
    expires_in_s: float | None,
    message: str,
) -> None:
    tokens = repository(database, clocks)
    expires = clocks.now() + timedelta(seconds=expires_in_s) if expires_in_s is not None else None
    with pytest.raises(ValidationFailed, match=message):
        tokens.create(name, principal, scopes, expires)
    assert tokens.list() == []


def test_naive_expiry_is_refused(database: Database, clocks: Clocks) -> None:
    with pytest.raises(ValidationFailed, match="timezone-aware"):
        repository(database, clocks).create("ci", "ci", ["admin"], datetime(2031, 1, 1))
