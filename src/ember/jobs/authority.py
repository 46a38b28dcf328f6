"""A job runs as its submitter: what the submitter may no longer do, the job does not do.

``POST /jobs`` checks the kind's scopes against the caller; :class:`SubmitterCheck` checks
them again when a worker is about to run the job (an attempt may start long after the submit,
or again after a worker was lost), against the token that submitted it as it is now.
"""

from __future__ import annotations

from ember.auth.principal import Principal
from ember.auth.protocol import TokenRepository
from ember.auth.scopes import Scope
from ember.errors import Forbidden, Unauthorized
from ember.jobs.records import JobRecord

__all__ = ["SubmitterCheck", "require_scopes"]


def require_scopes(principal: Principal, kind: str, scopes: frozenset[Scope]) -> None:
    """:raises Forbidden: ``principal`` lacks one of ``scopes`` (the first, by name, is
    ``required_scope`` in the body)."""
    missing = sorted(scope.value for scope in scopes if not principal.allows(scope))
    if missing:
        held = ", ".join(sorted(principal.scopes)) or "none"
        raise Forbidden(
            f"a {kind!r} job needs the scope(s) {', '.join(missing)}; "
            f"{principal.name!r} holds: {held}",
            extra={"required_scope": missing[0]},
        )


class SubmitterCheck:
    """Checks a job's submitter before each attempt; jobs without a token (submitted through
    the loopback dev bypass) run as they were accepted."""

    def __init__(self, tokens: TokenRepository) -> None:
        self._tokens = tokens

    def check(self, job: JobRecord, scopes: frozenset[Scope]) -> None:
        """:raises Unauthorized: the submitting token was revoked, expired or moved.
        :raises Forbidden: it no longer holds one of ``scopes``."""
        if job.token_id is None:
            return
        principal = self._tokens.principal_of(job.token_id)
        if principal.workspace != job.workspace or principal.name != job.principal:
            raise Unauthorized("the token that submitted this job no longer acts for it")
        require_scopes(principal, job.kind, scopes)
