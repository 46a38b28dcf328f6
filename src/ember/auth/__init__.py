"""Authentication and limits: scopes, principals, hashed bearer tokens and token buckets.

Plain classes below the Ray line; :mod:`ember.serve_app.auth` applies them to HTTP and
WebSocket requests.
"""

from ember.auth.authenticator import Authenticator
from ember.auth.principal import (
    DEFAULT_WORKSPACE,
    LOCAL_PRINCIPAL,
    RESERVED_PRINCIPALS,
    Principal,
)
from ember.auth.protocol import TokenRepository
from ember.auth.ratelimit import RateLimiter
from ember.auth.scopes import ALL_SCOPES, Scope, known_scopes, parse_scopes
from ember.auth.tokens import TOKEN_PREFIX, SqlTokenRepository, hash_token, new_token
from ember.auth.workspaces import SqlWorkspaceRepository, WorkspaceRecord

__all__ = [
    "ALL_SCOPES",
    "DEFAULT_WORKSPACE",
    "LOCAL_PRINCIPAL",
    "RESERVED_PRINCIPALS",
    "TOKEN_PREFIX",
    "Authenticator",
    "Principal",
    "RateLimiter",
    "Scope",
    "SqlTokenRepository",
    "SqlWorkspaceRepository",
    "TokenRepository",
    "WorkspaceRecord",
    "hash_token",
    "known_scopes",
    "new_token",
    "parse_scopes",
]
