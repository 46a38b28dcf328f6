"""From presented credentials to an allowed :class:`Principal`: token, dev bypass, limit, scope.

Order for every request: a presented token is always checked (a bad one is 401 even from
loopback); without one, a loopback client is the ``local`` principal while the dev bypass is
open; then the principal's rate limit is taken, then its scope is checked. A request refused
with 401 also takes a token from its client address's bucket: an address over that limit is
answered 429 instead, so guessing tokens or hammering without any is throttled per address.

The dev bypass is open when ``auth.loopback_without_tokens`` is on and no token was ever
created. It is a latch: once the first token exists the bypass stays off, even after every
token is revoked or has expired, unless ``auth.loopback_after_tokens`` is on (then it is open
again whenever no active token exists). Under the bypass, a bearer value that is not in
ember's token format (no ``ember_`` prefix) counts as no token: OpenAI clients always send
their ``api_key``, and apps pointed at a local server set it to anything. Transport details
(headers, client address, the ``Host`` check that must pass first) stay with the caller:
:mod:`ember.serve_app.auth`, :mod:`ember.serve_app.guards`.
"""

from __future__ import annotations

import logging

from ember.auth.principal import LOCAL_PRINCIPAL, Principal
from ember.auth.protocol import TokenRepository
from ember.auth.ratelimit import RateLimiter
from ember.auth.scopes import Scope
from ember.auth.tokens import TOKEN_PREFIX
from ember.config import AuthConfig
from ember.errors import Forbidden, RateLimited, Unauthorized

__all__ = ["Authenticator"]

log = logging.getLogger("ember.auth")
_NEEDS_TOKEN = "this request needs an `Authorization: Bearer <token>` header"


class Authenticator:
    """Authenticates, rate-limits and authorizes callers.

    :param tokens: where tokens are looked up.
    :param limiter: the per-principal rate limit.
    :param loopback_without_tokens: the dev bypass (see the module docstring).
    :param loopback_after_tokens: the bypass may come back once no active token is left.
    :param anonymous: the per-address limit of refused requests (default: none).
    """

    def __init__(
        self,
        tokens: TokenRepository,
        limiter: RateLimiter,
        *,
        loopback_without_tokens: bool = True,
        loopback_after_tokens: bool = False,
        anonymous: RateLimiter | None = None,
    ) -> None:
        self.tokens = tokens
        self.limiter = limiter
        self.loopback_without_tokens = loopback_without_tokens
        self.loopback_after_tokens = loopback_after_tokens
        self.anonymous = RateLimiter(0, 1) if anonymous is None else anonymous

    @classmethod
    def from_config(cls, config: AuthConfig, tokens: TokenRepository) -> Authenticator:
        """An authenticator with the limits and bypass ``config`` sets."""
        return cls(
            tokens,
            RateLimiter(config.rate_limit_per_s, config.rate_limit_burst),
            loopback_without_tokens=config.loopback_without_tokens,
            loopback_after_tokens=config.loopback_after_tokens,
            anonymous=RateLimiter(
                config.anonymous_rate_limit_per_s, config.anonymous_rate_limit_burst
            ),
        )

    def _bypass_open(self) -> bool:
        """Whether no token closes the bypass now (may read the database)."""
        if self.loopback_after_tokens:
            return not self.tokens.has_active_tokens()
        return not self.tokens.ever_created()

    def _bypass_cached(self) -> bool:
        """Whether :meth:`_bypass_open` can answer from the repository's caches."""
        if self.loopback_after_tokens:
            return self.tokens.cached_active() is not None
        return self.tokens.cached_ever_created() is not None

    def authenticate(self, token: str | None, *, loopback: bool) -> Principal:
        """Who presents ``token`` (``None``: no credentials) from a loopback client or not.

        :raises Unauthorized: the token is unknown, revoked or expired, or none was given and
            the dev bypass does not apply.
        """
        bypass = loopback and self.loopback_without_tokens
        if token is not None and not (bypass and not token.startswith(TOKEN_PREFIX)):
            return self.tokens.authenticate(token)
        if bypass:
            if self._bypass_open():
                return LOCAL_PRINCIPAL
            if self.loopback_after_tokens:
                raise Unauthorized(f"API tokens exist, so {_NEEDS_TOKEN}")
            raise Unauthorized(f"API tokens exist or existed, so {_NEEDS_TOKEN}")
        raise Unauthorized(_NEEDS_TOKEN)

    def answers_from_memory(self, token: str | None, *, loopback: bool) -> bool:
        """Whether :meth:`authorize` can answer without reading the database: no token is
        checked and whether the bypass is open is cached. Async callers run it inline then,
        and in a thread otherwise."""
        bypass = loopback and self.loopback_without_tokens
        checks_token = token is not None and not (bypass and not token.startswith(TOKEN_PREFIX))
        return not checks_token and (not bypass or self._bypass_cached())

    def authorize(
        self, token: str | None, *, loopback: bool, scope: Scope, address: str | None = None
    ) -> Principal:
        """:meth:`authenticate`, then the principal's rate limit, then ``scope``.

        :param address: the client's address; a refusal (401) counts against its limit.
        :raises Unauthorized: see :meth:`authenticate`.
        :raises RateLimited: the principal is over its limit, or the request is refused and
            its address is over the limit of refused requests.
        :raises Forbidden: the principal lacks ``scope`` (``required_scope`` in the body).
        """
        try:
            principal = self.authenticate(token, loopback=loopback)
        except Unauthorized as refused:
            self._count_refusal(address, refused)
            raise
        self.limiter.check(principal.name)
        if not principal.allows(scope):
            held = ", ".join(sorted(principal.scopes)) or "none"
            raise Forbidden(
                f"this needs the scope {scope.value!r}; {principal.name!r} holds: {held}",
                extra={"required_scope": scope.value},
            )
        return principal

    def _count_refusal(self, address: str | None, refused: Unauthorized) -> None:
        if address is None:
            return
        try:
            self.anonymous.check(address)
        except RateLimited as over:
            raise RateLimited(
                f"too many requests without valid credentials from {address}",
                retry_after_s=over.retry_after_s,
            ) from refused

    def mode(self) -> str:
        """How requests are authenticated now, in words (reads the database).

        :raises StorageError: the token table cannot be read.
        """
        if self.tokens.has_active_tokens():
            return "API tokens configured: every request needs a bearer token"
        if not self.loopback_without_tokens:
            return (
                "no active API token and auth.loopback_without_tokens is false: every request "
                "is refused until `ember tokens create`"
            )
        if self._bypass_open():
            return (
                "no API tokens configured: accepting loopback clients only, as principal "
                "'local' with every scope; create one with `ember tokens create`"
            )
        return (
            "no active API token, and tokens were created before: the loopback bypass stays "
            "off (auth.loopback_after_tokens is false); every request needs a bearer token"
        )

    def log_mode(self) -> None:
        """Log, once at start-up, how requests are authenticated (WARNING unless tokens are
        required and some exist)."""
        try:
            active = self.tokens.has_active_tokens()
            mode = self.mode()
        except Exception as exc:
            log.warning("cannot tell whether API tokens exist: %s", str(exc).splitlines()[0])
            return
        if active:
            log.info(mode)
        else:
            log.warning(mode)
