"""The scopes a token can hold. ``cluster:admin`` grants every scope in every workspace;
``admin`` grants every other scope in its own workspace; no other scope implies one."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from ember.errors import ValidationFailed

__all__ = ["ALL_SCOPES", "Scope", "known_scopes", "parse_scopes"]


class Scope(StrEnum):
    """One permission of the HTTP API."""

    JOBS_READ = "jobs:read"
    JOBS_WRITE = "jobs:write"
    MEMORY_READ = "memory:read"
    MEMORY_WRITE = "memory:write"
    MODELS_USE = "models:use"
    AGENTS_READ = "agents:read"
    AGENTS_WRITE = "agents:write"
    AGENTS_RUN = "agents:run"
    VMS_RUN = "vms:run"
    ADMIN = "admin"
    CLUSTER_ADMIN = "cluster:admin"


ALL_SCOPES: frozenset[Scope] = frozenset(Scope)
_BY_VALUE = {scope.value: scope for scope in Scope}


def parse_scopes(values: Iterable[str]) -> frozenset[Scope]:
    """The scopes named by ``values`` (at least one).

    :raises ValidationFailed: a value is not a scope (the message lists the valid ones), or
        ``values`` is empty.
    """
    names = list(values)
    unknown = sorted({name for name in names if name not in _BY_VALUE})
    if unknown:
        valid = ", ".join(scope.value for scope in Scope)
        raise ValidationFailed(f"unknown scope(s) {', '.join(unknown)}; valid scopes: {valid}")
    if not names:
        raise ValidationFailed("a token needs at least one scope")
    return frozenset(_BY_VALUE[name] for name in names)


def known_scopes(values: Iterable[str]) -> frozenset[Scope]:
    """The scopes among ``values``, ignoring names this version does not know (stored rows)."""
    return frozenset(_BY_VALUE[name] for name in values if name in _BY_VALUE)
