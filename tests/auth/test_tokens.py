"""The token repository on SQLite and a real Postgres: hash-only storage, revoke, expiry."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from ember.auth import TOKEN_PREFIX, Scope, SqlTokenRepository
from ember.errors import TokenNotFound, Unauthorized, ValidationFailed
from ember.storage import Database
from tests.support.clock import FakeClock

pytestmark = pytest.mark.slow


@pytest.fixture
def clock() -> FakeClock:
    """Monotonic seconds from 100.0 and wall time from 2030-01-01 UTC, moved together."""
    return FakeClock(100.0, wall=datetime(2030, 1, 1, tzinfo=UTC))


def repository(database: Database, clock: FakeClock, cache_s: float = 5.0) -> SqlTokenRepository:
    return SqlTokenRepository(
        database, clock=clock.wall, monotonic=clock.monotonic, active_cache_s=cache_s
    )


def raw_rows(database: Database) -> list[tuple[object, ...]]:
    return database.run(
        lambda session: [tuple(row) for row in session.execute(text("SELECT * FROM api_tokens"))]
    )


def test_only_the_hash_is_stored(database: Database, clock: FakeClock) -> None:
    tokens = repository(database, clock)
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


def test_each_token_is_new(database: Database, clock: FakeClock) -> None:
    tokens = repository(database, clock)
    secrets = set()
    for index in range(5):
        secrets.add(tokens.create(f"t{index}", "p", ["admin"])[1])
        clock.advance(1)
    assert len(secrets) == 5
    assert [record.name for record in tokens.list()] == [f"t{i}" for i in range(5)]


def test_authenticate_returns_the_principal_and_touches_at_most_once_a_minute(
    database: Database, clock: FakeClock
) -> None:
    tokens = repository(database, clock)
    record, plaintext = tokens.create("ci", "ci-bot", ["memory:write"])
    principal = tokens.authenticate(plaintext)
    assert principal.name == "ci-bot" and principal.token_id == record.id
    assert principal.scopes == {Scope.MEMORY_WRITE} and not principal.loopback
    first = clock.wall()
    assert tokens.list()[0].last_used_at == first
    clock.advance(30)
    tokens.authenticate(plaintext)
    assert tokens.list()[0].last_used_at == first
    clock.advance(31)
    tokens.authenticate(plaintext)
    assert tokens.list()[0].last_used_at == clock.wall()


@pytest.mark.parametrize("presented", ["", "ember_nope", "x" * 10_000])
def test_unknown_tokens_are_unauthorized(
    database: Database, clock: FakeClock, presented: str
) -> None:
    tokens = repository(database, clock)
    tokens.create("ci", "ci", ["admin"])
    with pytest.raises(Unauthorized, match="invalid API token"):
        tokens.authenticate(presented)


def test_revoke_stops_the_token_everywhere_and_is_idempotent(
    database: Database, clock: FakeClock
) -> None:
    tokens = repository(database, clock)
    other_process = repository(database, clock)
    record, plaintext = tokens.create("ci", "ci", ["admin"])
    assert other_process.authenticate(plaintext).name == "ci"
    assert other_process.has_active_tokens()
    revoked = tokens.revoke(record.id)
    assert revoked.revoked_at == clock.wall()
    with pytest.raises(Unauthorized, match="revoked"):
        other_process.authenticate(plaintext)
    clock.advance(10)
    assert tokens.revoke(record.id).revoked_at == revoked.revoked_at
    assert tokens.list()[0].revoked_at == revoked.revoked_at


def test_revoking_an_unknown_token(database: Database, clock: FakeClock) -> None:
    with pytest.raises(TokenNotFound, match="no API token has the id 'nope'") as caught:
        repository(database, clock).revoke("nope")
    assert caught.value.code == "token_not_found" and caught.value.status == 404


def test_expired_tokens_are_unauthorized_and_inactive(database: Database, clock: FakeClock) -> None:
    tokens = repository(database, clock, cache_s=0)
    _, plaintext = tokens.create(
        "ci", "ci", ["admin"], expires_at=clock.wall() + timedelta(hours=1)
    )
    assert tokens.authenticate(plaintext).name == "ci"
    assert tokens.has_active_tokens()
    clock.advance(3600)
    with pytest.raises(Unauthorized, match="expired"):
        tokens.authenticate(plaintext)
    assert not tokens.has_active_tokens()


def test_has_active_tokens_is_cached_but_cleared_by_own_changes(
    database: Database, clock: FakeClock
) -> None:
    tokens = repository(database, clock)
    other_process = repository(database, clock)
    assert not tokens.has_active_tokens()
    assert not other_process.has_active_tokens()
    record, plaintext = tokens.create("ci", "ci", ["admin"])
    assert tokens.has_active_tokens()
    assert not other_process.has_active_tokens()
    assert other_process.authenticate(plaintext).name == "ci"
    clock.advance(5)
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
    clock: FakeClock,
    name: str,
    principal: str,
    scopes: list[str],
    expires_in_s: float | None,
    message: str,
) -> None:
    tokens = repository(database, clock)
    expires = clock.wall() + timedelta(seconds=expires_in_s) if expires_in_s is not None else None
    with pytest.raises(ValidationFailed, match=message):
        tokens.create(name, principal, scopes, expires)
    assert tokens.list() == []


def test_naive_expiry_is_refused(database: Database, clock: FakeClock) -> None:
    with pytest.raises(ValidationFailed, match="timezone-aware"):
        repository(database, clock).create("ci", "ci", ["admin"], datetime(2031, 1, 1))


def test_ever_created_counts_revoked_and_expired_tokens(
    database: Database, clock: FakeClock
) -> None:
    tokens = repository(database, clock)
    other_process = repository(database, clock)
    assert not tokens.ever_created() and tokens.cached_ever_created() is False
    assert not other_process.ever_created()
    record, _ = tokens.create("ci", "ci", ["admin"], expires_at=clock.wall() + timedelta(hours=1))
    assert tokens.ever_created(), "its own create clears the cache"
    assert not other_process.ever_created(), "another process answers from its cache"
    clock.advance(5)
    assert other_process.ever_created()
    tokens.revoke(record.id)
    clock.advance(3600)
    assert not tokens.has_active_tokens()
    assert tokens.ever_created() and other_process.ever_created()
    clock.advance(10**6)
    assert other_process.cached_ever_created() is True, "a true answer never goes stale"
