"""Callers for tests of services that take a :class:`~ember.auth.Principal`."""

from __future__ import annotations

from ember.auth import DEFAULT_WORKSPACE, Principal, Scope

MEMBER_SCOPES = frozenset(
    {Scope.JOBS_READ, Scope.JOBS_WRITE, Scope.MEMORY_READ, Scope.MEMORY_WRITE, Scope.MODELS_USE}
)
"""Every scope but the two admin ones: a caller who sees only its own jobs."""


def caller(
    name: str,
    scopes: frozenset[Scope] = MEMBER_SCOPES,
    *,
    workspace: str = DEFAULT_WORKSPACE,
    token_id: str | None = None,
) -> Principal:
    """A principal as the API would admit it."""
    return Principal(name, scopes, token_id=token_id, workspace=workspace)
