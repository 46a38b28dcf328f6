"""API tokens: ``ember_`` plus 43 URL-safe characters (256 random bits), stored as SHA-256.

:class:`SqlTokenRepository` implements :class:`~ember.auth.protocol.TokenRepository` over the
``api_tokens`` table. ``authenticate`` is one indexed lookup by hash (``token_hash`` is
unique) and writes only when ``last_used_at`` is a minute old; ``has_active_tokens`` and
``ever_created`` are cached for a few seconds (``ever_created`` for good once true: rows are
never deleted).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from ember.auth.principal import DEFAULT_WORKSPACE, RESERVED_PRINCIPALS, Principal
from ember.auth.scopes import known_scopes, parse_scopes
from ember.errors import NotFound, TokenNotFound, Unauthorized, ValidationFailed
from ember.storage.clock import utcnow
from ember.storage.database import Database
from ember.storage.records import TokenRecord
from ember.storage.tables import ApiToken, Workspace

__all__ = ["TOKEN_PREFIX", "SqlTokenRepository", "hash_token", "new_token"]

TOKEN_PREFIX = "ember_"
_MAX_TOKEN_CHARS = 256
_MAX_NAME_CHARS = 128


def new_token() -> str:
    """A fresh secret: the ``ember_`` prefix (so scanners can spot leaks) and 32 random bytes."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(plaintext: str) -> str:
    """The SHA-256 hex digest stored for ``plaintext``."""
    return hashlib.sha256(plaintext.encode()).hexdigest()


def _record(row: ApiToken) -> TokenRecord:
    return TokenRecord(
        id=row.id,
        name=row.name,
        principal=row.principal,
        scopes=tuple(sorted(row.scopes)),
        workspace=row.workspace,
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
    )


def _check_name(what: str, value: str) -> None:
    if not value.strip() or len(value) > _MAX_NAME_CHARS:
        raise ValidationFailed(f"the {what} must be 1 to {_MAX_NAME_CHARS} characters")


class SqlTokenRepository:
    """Tokens in the ``api_tokens`` table.

    :param clock: the current aware UTC time (tests pass a fake).
    :param monotonic: seconds for the ``has_active_tokens`` and ``ever_created`` caches.
    :param touch_interval_s: least time between two ``last_used_at`` writes of one token.
    :param active_cache_s: how long ``has_active_tokens`` (and a ``False`` from
        ``ever_created``) trusts its last answer.
    """

    def __init__(
        self,
        database: Database,
        *,
        clock: Callable[[], datetime] = utcnow,
        monotonic: Callable[[], float] = time.monotonic,
        touch_interval_s: float = 60.0,
        active_cache_s: float = 5.0,
    ) -> None:
        self._db = database
        self._clock = clock
        self._monotonic = monotonic
        self._touch_interval = timedelta(seconds=touch_interval_s)
        self._active_cache_s = active_cache_s
        self._active: tuple[bool, float] | None = None
        self._ever: tuple[bool, float] | None = None
        self._generation = 0
        self._lock = threading.Lock()

    def create(
        self,
        name: str,
        principal: str,
        scopes: Iterable[str],
        expires_at: datetime | None = None,
        workspace: str = DEFAULT_WORKSPACE,
    ) -> tuple[TokenRecord, str]:
        granted = parse_scopes(scopes)
        _check_name("name", name)
        _check_name("principal", principal)
        if principal in RESERVED_PRINCIPALS:
            raise ValidationFailed(f"the principal {principal!r} is reserved")
        if expires_at is not None:
            if expires_at.tzinfo is None:
                raise ValidationFailed("expires_at must be timezone-aware")
            if expires_at <= self._clock():
                raise ValidationFailed("expires_at must be in the future")
        plaintext = new_token()

        def work(session: Session) -> TokenRecord:
            if session.get(Workspace, workspace) is None:
                raise NotFound(f"no workspace named {workspace!r}")
            elsewhere = session.scalars(
                select(ApiToken.workspace)
                .where(ApiToken.principal == principal, ApiToken.workspace != workspace)
                .limit(1)
            ).first()
            if elsewhere is not None:
                raise ValidationFailed(f"the principal {principal!r} belongs to another workspace")
            row = ApiToken(
                name=name,
                principal=principal,
                workspace=workspace,
                token_hash=hash_token(plaintext),
                scopes=sorted(scope.value for scope in granted),
                created_at=self._clock(),
                expires_at=expires_at,
            )
            session.add(row)
            session.flush()
            return _record(row)

        record = self._db.run(work)
        self._forget_active()
        return record, plaintext

    def list(self, workspace: str | None = None) -> list[TokenRecord]:
        query = select(ApiToken).order_by(ApiToken.created_at, ApiToken.id)
        if workspace is not None:
            query = query.where(ApiToken.workspace == workspace)
        return self._db.run(lambda session: [_record(row) for row in session.scalars(query)])

    def get(self, token_id: str) -> TokenRecord:
        def work(session: Session) -> TokenRecord:
            row = session.get(ApiToken, token_id)
            if row is None:
                raise TokenNotFound(f"no API token has the id {token_id!r}")
            return _record(row)

        return self._db.run(work)

    def revoke(self, token_id: str) -> TokenRecord:
        def work(session: Session) -> TokenRecord:
            row = session.get(ApiToken, token_id, with_for_update=True)
            if row is None:
                raise TokenNotFound(f"no API token has the id {token_id!r}")
            if row.revoked_at is None:
                row.revoked_at = self._clock()
            return _record(row)

        record = self._db.run(work)
        self._forget_active()
        return record

    def principal_of(self, token_id: str) -> Principal:
        def work(session: Session) -> Principal:
            row = session.get(ApiToken, token_id)
            if row is None:
                raise Unauthorized("API token unknown")
            return self._principal(row)

        return self._db.run(work)

    def _principal(self, row: ApiToken) -> Principal:
        if row.revoked_at is not None:
            raise Unauthorized("API token revoked")
        if row.expires_at is not None and row.expires_at <= self._clock():
            raise Unauthorized("API token expired")
        return Principal(
            row.principal, known_scopes(row.scopes), token_id=row.id, workspace=row.workspace
        )

    def authenticate(self, plaintext: str) -> Principal:
        if not plaintext or len(plaintext) > _MAX_TOKEN_CHARS:
            raise Unauthorized("invalid API token")
        digest = hash_token(plaintext)
        query = select(ApiToken).where(ApiToken.token_hash == digest)

        def work(session: Session) -> Principal:
            row = session.scalars(query).first()
            if row is None or not hmac.compare_digest(row.token_hash, digest):
                raise Unauthorized("invalid API token")
            principal = self._principal(row)
            now = self._clock()
            if row.last_used_at is None or now - row.last_used_at >= self._touch_interval:
                row.last_used_at = now
            return principal

        return self._db.run(work)

    def cached_active(self) -> bool | None:
        with self._lock:
            cached = self._active
        if cached is not None and self._monotonic() < cached[1]:
            return cached[0]
        return None

    def has_active_tokens(self) -> bool:
        with self._lock:
            cached, generation = self._active, self._generation
        if cached is not None and self._monotonic() < cached[1]:
            return cached[0]
        now = self._clock()
        query = (
            select(ApiToken.id)
            .where(ApiToken.revoked_at.is_(None))
            .where(or_(ApiToken.expires_at.is_(None), ApiToken.expires_at > now))
            .limit(1)
        )
        found = self._db.run(lambda session: session.scalars(query).first() is not None)
        with self._lock:
            if generation == self._generation:
                self._active = (found, self._monotonic() + self._active_cache_s)
        return found

    def cached_ever_created(self) -> bool | None:
        with self._lock:
            cached = self._ever
        if cached is not None and (cached[0] or self._monotonic() < cached[1]):
            return cached[0]
        return None

    def ever_created(self) -> bool:
        cached = self.cached_ever_created()
        if cached is not None:
            return cached
        with self._lock:
            generation = self._generation
        query = select(func.count()).select_from(ApiToken)
        found = bool(self._db.run(lambda session: session.scalar(query)))
        with self._lock:
            if found or generation == self._generation:
                self._ever = (found, self._monotonic() + self._active_cache_s)
        return found

    def _forget_active(self) -> None:
        with self._lock:
            self._active = None
            self._ever = None
            self._generation += 1
