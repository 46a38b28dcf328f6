"""The token store's contract; :class:`~ember.auth.tokens.SqlTokenRepository` implements it."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Protocol

from ember.auth.principal import Principal
from ember.storage.records import TokenRecord

__all__ = ["TokenRepository"]


class TokenRepository(Protocol):
    """API tokens: only a SHA-256 hash of each secret is stored; the secret is shown once."""

    def create(
        self,
        name: str,
        principal: str,
        scopes: Iterable[str],
        expires_at: datetime | None = None,
    ) -> tuple[TokenRecord, str]:
        """Create a token and return its record and its plaintext secret.

        The plaintext is not stored and cannot be recovered later.

        :raises ValidationFailed: an unknown or no scope, an empty or reserved principal
            (``local``, ``cli``), a name or principal over 128 characters, or ``expires_at``
            naive or not in the future.
        """
        ...

    def list(self) -> list[TokenRecord]:
        """Every token, revoked and expired ones too, oldest first."""
        ...

    def revoke(self, token_id: str) -> TokenRecord:
        """Revoke a token; it stops authenticating at once, in every process.

        Idempotent: revoking a revoked token changes nothing and returns it with its first
        ``revoked_at``.

        :raises TokenNotFound: no token has ``token_id``.
        """
        ...

    def authenticate(self, plaintext: str) -> Principal:
        """The principal ``plaintext`` authenticates, with the token's scopes.

        Reads the token's row every call (a revoked token fails at once); sets
        ``last_used_at`` at most once per minute per token.

        :raises Unauthorized: the token is unknown, revoked or expired.
        """
        ...

    def has_active_tokens(self) -> bool:
        """Whether any token is neither revoked nor expired.

        May answer from a cache a few seconds old; creating or revoking through this
        repository clears the cache.
        """
        ...

    def cached_active(self) -> bool | None:
        """What :meth:`has_active_tokens` would answer from its cache, without reading the
        database; ``None`` when the cache is empty or stale."""
        ...
