"""From presented credentials to an allowed :class:`Principal`: token, dev bypass, limit, scope.

Order for every request: a presented token is always checked (a bad one is 401 even from
loopback); without one, a loopback client is the ``local`` principal only while no active
token exists and ``auth.loopback_without_tokens`` is on; then the principal's rate limit is
taken, then its scope is checked. Under that same bypass, a bearer value that is not in
ember's token format (no ``ember_`` prefix) counts as no token: OpenAI clients always send
their ``api_key``, and apps pointed at a local server set it to anything. Transport details
(headers, client address) stay with the caller: :mod:`ember.serve_app.auth`.
"""

from __future__ import annotations

import logging

from ember.auth.principal import LOCAL_PRINCIPAL, Principal
from ember.auth.protocol import TokenRepository
from ember.auth.ratelimit import RateLimiter
from ember.auth.scopes import Scope
from ember.auth.tokens import TOKEN_PREFIX
from ember.config import AuthConfig
from ember.errors import Forbidden, Unauthorized

__all__ = ["Authenticator"]

log = logging.getLogger("ember.auth")
_NEEDS_TOKEN = "this request needs an `Authorization: Bearer <token>` header"


class Authenticator:
    """Authenticates, rate-limits and authorizes callers.

    :param tokens: where tokens are looked up.
    :param limiter: the per-principal rate limit.
    :param loopback_without_tokens: the dev bypass (see the module docstring).
    """

    def __init__(
        self,
        tokens: TokenRepository,
        limiter: RateLimiter,
        *,
        loopback_without_tokens: bool = True,
    ) -> None:
        self.tokens = tokens
        self.limiter = limiter
        self.loopback_without_tokens = loopback_without_tokens

    @classmethod
    def from_config(cls, config: AuthConfig, tokens: TokenRepository) -> Authenticator:
        """An authenticator with the limits and bypass ``config`` sets."""
        limiter = RateLimiter(config.rate_limit_per_s, config.rate_limit_burst)
        return cls(tokens, limiter, loopback_without_tokens=config.loopback_without_tokens)

    def authenticate(self, token: str | None, *, loopback: bool) -> Principal:
        """Who presents ``token`` (``None``: no credentials) from a loopback client or not.

        :raises Unauthorized: the token is unknown, revoked or expired, or none was given and
            the dev bypass does not apply.
        """
        bypass = loopback and self.loopback_without_tokens
        if token is not None and not (bypass and not token.startswith(TOKEN_PREFIX)):
            return self.tokens.authenticate(token)
        if bypass:
            if not self.tokens.has_active_tokens():
                return LOCAL_PRINCIPAL
            raise Unauthorized(f"API tokens exist, so {_NEEDS_TOKEN}")
        raise Unauthorized(_NEEDS_TOKEN)

    def answers_from_memory(self, token: str | None, *, loopback: bool) -> bool:
        """Whether :meth:`authorize` can answer without reading the database: no token is
        checked and whether tokens exist is cached. Async callers run it inline then, and in
        a thread otherwise."""
        bypass = loopback and self.loopback_without_tokens
        checks_token = token is not None and not (bypass and not token.startswith(TOKEN_PREFIX))
        return not checks_token and (not bypass or self.tokens.cached_active() is not None)

    def authorize(self, token: str | None, *, loopback: bool, scope: Scope) -> Principal:
        """:meth:`authenticate`, then the principal's rate limit, then ``scope``.

        :raises Unauthorized: see :meth:`authenticate`.
        :raises RateLimited: the principal is over its limit.
        :raises Forbidden: the principal lacks ``scope`` (``required_scope`` in the body).
        """
        principal = self.authenticate(token, loopback=loopback)
        self.limiter.check(principal.name)
        if not principal.allows(scope):
            held = ", ".join(sorted(principal.scopes)) or "none"
            raise Forbidden(
                f"this needs the scope {scope.value!r}; {principal.name!r} holds: {held}",
                extra={"required_scope": scope.value},
            )
        return principal

    def log_mode(self) -> None:
        """Log, once at start-up, whether tokens are required (WARNING while they are not)."""
        try:
            active = self.tokens.has_active_tokens()
        except Exception as exc:
            log.warning("cannot tell whether API tokens exist: %s", str(exc).splitlines()[0])
            return
        if active:
            log.info("API tokens configured: every request needs a bearer token")
        elif self.loopback_without_tokens:
            log.warning(
                "no API tokens configured: accepting loopback clients only, as principal "
                "'local' with every scope; create one with `ember tokens create`"
            )
        else:
            log.warning(
                "no API tokens configured and auth.loopback_without_tokens is false: every "
                "request is refused until `ember tokens create`"
            )
