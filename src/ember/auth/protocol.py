"""The token store's contract; :class:`~ember.auth.tokens.SqlTokenRepository` implements it."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Protocol

from ember.auth.principal import DEFAULT_WORKSPACE, Principal
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
        workspace: str = DEFAULT_WORKSPACE,
    ) -> tuple[TokenRecord, str]:
        """Create a token of ``principal`` in ``workspace`` and return its record and its
        plaintext secret. A principal belongs to one workspace: all its tokens are there.

        The plaintext is not stored and cannot be recovered later.

        :raises NotFound: no such workspace.
        :raises ValidationFailed: an unknown or no scope, an empty or reserved principal
            (``local``, ``cli``), a name or principal over 128 characters, or ``expires_at``
            naive or not in the future.
        """
        ...

    def list(self, workspace: str | None = None) -> list[TokenRecord]:
        """Every token (only ``workspace``'s when given), revoked and expired ones too,
        oldest first."""
        ...

    def get(self, token_id: str) -> TokenRecord:
        """:raises TokenNotFound: no token has ``token_id``."""
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

    def principal_of(self, token_id: str) -> Principal:
        """The principal the token ``token_id`` authenticates now (read from its row).

        :raises Unauthorized: no such token, or it is revoked or expired.
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

    def ever_created(self) -> bool:
        """Whether any token was ever created: revoked and expired ones count.

        Once ``True`` it stays ``True`` for this repository (tokens are revoked, never
        deleted). A ``False`` may come from a cache a few seconds old; creating through this
        repository clears it.
        """
        ...

    def cached_ever_created(self) -> bool | None:
        """What :meth:`ever_created` would answer from its cache, without reading the
        database; ``None`` when the cache is empty or stale."""
        ...
