"""The Authenticator alone: token first, then the bypass, then the limit, then the scope."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from ember.auth import LOCAL_PRINCIPAL, Authenticator, RateLimiter, Scope, SqlTokenRepository
from ember.config import AuthConfig
from ember.errors import Forbidden, RateLimited, Unauthorized
from ember.storage import Database, Migrator


@pytest.fixture
def tokens(tmp_path: Path) -> Iterator[SqlTokenRepository]:
    database = Database(f"sqlite:///{tmp_path / 'ember.db'}")
    Migrator(database).upgrade()
    try:
        yield SqlTokenRepository(database)
    finally:
        database.dispose()


def test_a_presented_token_is_checked_even_from_loopback(tokens: SqlTokenRepository) -> None:
    auth = Authenticator(tokens, RateLimiter(0, 1))
    assert auth.authenticate(None, loopback=True) is LOCAL_PRINCIPAL
    with pytest.raises(Unauthorized, match="invalid API token"):
        auth.authenticate("ember_wrong", loopback=True)
    with pytest.raises(Unauthorized, match="needs an `Authorization: Bearer <token>` header"):
        auth.authenticate(None, loopback=False)


def test_a_foreign_api_key_counts_as_none_only_under_the_bypass(
    tokens: SqlTokenRepository,
) -> None:
    auth = Authenticator(tokens, RateLimiter(0, 1))
    assert auth.authenticate("sk-anything", loopback=True) is LOCAL_PRINCIPAL
    with pytest.raises(Unauthorized):
        auth.authenticate("sk-anything", loopback=False)
    tokens.create("ci", "ci", ["models:use"])
    with pytest.raises(Unauthorized, match="API tokens exist"):
        auth.authenticate("sk-anything", loopback=True)
    closed = Authenticator(tokens, RateLimiter(0, 1), loopback_without_tokens=False)
    with pytest.raises(Unauthorized):
        closed.authenticate("sk-anything", loopback=True)


def test_the_rate_limit_counts_before_the_scope_check(tokens: SqlTokenRepository) -> None:
    auth = Authenticator.from_config(AuthConfig(rate_limit_per_s=0.001, rate_limit_burst=2), tokens)
    _, secret = tokens.create("ci", "ci", ["memory:read"])
    assert auth.authorize(secret, loopback=False, scope=Scope.MEMORY_READ).name == "ci"
    with pytest.raises(Forbidden) as caught:
        auth.authorize(secret, loopback=False, scope=Scope.MODELS_USE)
    assert caught.value.extra == {"required_scope": "models:use"}
    with pytest.raises(RateLimited):
        auth.authorize(secret, loopback=False, scope=Scope.MEMORY_READ)


def test_the_mode_log_survives_an_unmigrated_database(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    database = Database(f"sqlite:///{tmp_path / 'empty.db'}")
    auth = Authenticator(SqlTokenRepository(database), RateLimiter(1, 1))
    logger = logging.getLogger("ember.auth")
    logger.addHandler(caplog.handler)
    try:
        auth.log_mode()
    finally:
        logger.removeHandler(caplog.handler)
        database.dispose()
    assert "cannot tell whether API tokens exist" in caplog.text


def test_answers_from_memory_only_when_no_read_is_needed(tokens: SqlTokenRepository) -> None:
    auth = Authenticator(tokens, RateLimiter(0, 1))
    assert not auth.answers_from_memory(None, loopback=True), "nothing cached yet"
    auth.authenticate(None, loopback=True)
    assert auth.answers_from_memory(None, loopback=True)
    assert auth.answers_from_memory("sk-foreign", loopback=True)
    assert not auth.answers_from_memory("ember_x", loopback=True), "an ember token is looked up"
    assert not auth.answers_from_memory("sk-foreign", loopback=False)
    tokens.create("ci", "ci", ["models:use"])
    assert not auth.answers_from_memory(None, loopback=True), "creating a token clears the cache"


def test_the_bypass_is_a_latch_once_a_token_was_created(tokens: SqlTokenRepository) -> None:
    latched = Authenticator(tokens, RateLimiter(0, 1))
    reopening = Authenticator(tokens, RateLimiter(0, 1), loopback_after_tokens=True)
    assert latched.authenticate(None, loopback=True) is LOCAL_PRINCIPAL
    assert "accepting loopback clients only" in latched.mode()
    record, _ = tokens.create("ci", "ci", ["admin"])
    tokens.revoke(record.id)
    with pytest.raises(Unauthorized, match="API tokens exist or existed"):
        latched.authenticate(None, loopback=True)
    assert "the loopback bypass stays off" in latched.mode()
    assert latched.answers_from_memory(None, loopback=True), "the latch is cached"
    assert reopening.authenticate(None, loopback=True) is LOCAL_PRINCIPAL
    assert "accepting loopback clients only" in reopening.mode()
    closed = Authenticator(tokens, RateLimiter(0, 1), loopback_without_tokens=False)
    assert "every request is refused" in closed.mode()


def test_refusals_are_limited_per_address(tokens: SqlTokenRepository) -> None:
    config = AuthConfig(anonymous_rate_limit_per_s=0.001, anonymous_rate_limit_burst=2)
    auth = Authenticator.from_config(config, tokens)
    _, secret = tokens.create("ci", "ci", ["memory:read"])
    for _ in range(2):
        with pytest.raises(Unauthorized):
            auth.authorize("ember_guess", loopback=False, scope=Scope.MEMORY_READ, address="a")
    with pytest.raises(RateLimited, match="without valid credentials from a") as over:
        auth.authorize(None, loopback=False, scope=Scope.MEMORY_READ, address="a")
    assert over.value.retry_after_s > 1
    with pytest.raises(Unauthorized):
        auth.authorize(None, loopback=False, scope=Scope.MEMORY_READ, address="b")
    principal = auth.authorize(secret, loopback=False, scope=Scope.MEMORY_READ, address="a")
    assert principal.name == "ci", "valid credentials are never throttled as anonymous"
