"""Scopes and principals: admin grants everything, nothing else implies another scope."""

from __future__ import annotations

import pytest

from ember.auth import ALL_SCOPES, LOCAL_PRINCIPAL, Principal, Scope, known_scopes, parse_scopes
from ember.errors import ValidationFailed


def test_the_six_scopes() -> None:
    assert {scope.value for scope in ALL_SCOPES} == {
        "jobs:read",
        "jobs:write",
        "memory:read",
        "memory:write",
        "models:use",
        "admin",
    }


def test_parse_scopes_names_unknown_ones_and_lists_the_valid() -> None:
    assert parse_scopes(["memory:read", "memory:read"]) == {Scope.MEMORY_READ}
    with pytest.raises(ValidationFailed, match=r"unknown scope\(s\) memory:admin, root") as caught:
        parse_scopes(["memory:read", "root", "memory:admin"])
    assert "valid scopes: jobs:read, jobs:write" in caught.value.detail
    with pytest.raises(ValidationFailed, match="at least one scope"):
        parse_scopes([])


def test_known_scopes_ignores_names_it_does_not_know() -> None:
    assert known_scopes(["jobs:read", "future:thing"]) == {Scope.JOBS_READ}


@pytest.mark.parametrize("scope", list(Scope))
def test_admin_allows_every_scope(scope: Scope) -> None:
    assert Principal("root", frozenset({Scope.ADMIN})).allows(scope)
    assert LOCAL_PRINCIPAL.allows(scope)


def test_a_scope_implies_no_other() -> None:
    writer = Principal("w", frozenset({Scope.MEMORY_WRITE}), token_id="t")
    assert writer.allows(Scope.MEMORY_WRITE)
    assert not writer.allows(Scope.MEMORY_READ)
    assert not writer.allows(Scope.ADMIN)
    assert not writer.loopback and LOCAL_PRINCIPAL.loopback and LOCAL_PRINCIPAL.name == "local"
