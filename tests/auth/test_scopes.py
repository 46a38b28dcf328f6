"""Scopes and principals: admin grants everything, nothing else implies another scope."""

from __future__ import annotations

import pytest

from ember.auth import ALL_SCOPES, LOCAL_PRINCIPAL, Principal, Scope, known_scopes, parse_scopes
from ember.errors import ValidationFailed


def test_the_eleven_scopes() -> None:
    assert {scope.value for scope in ALL_SCOPES} == {
        "jobs:read",
        "jobs:write",
        "memory:read",
        "memory:write",
        "models:use",
        "agents:read",
        "agents:write",
        "agents:run",
        "vms:run",
        "admin",
        "cluster:admin",
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
def test_admin_allows_every_scope_of_its_workspace_and_cluster_admin_all(scope: Scope) -> None:
    admin = Principal("root", frozenset({Scope.ADMIN}))
    assert admin.allows(scope) == (scope is not Scope.CLUSTER_ADMIN)
    assert Principal("op", frozenset({Scope.CLUSTER_ADMIN})).allows(scope)
    assert LOCAL_PRINCIPAL.allows(scope)


def test_a_principal_sees_its_own_workspace_and_a_cluster_admin_every_one() -> None:
    member = Principal("b", frozenset({Scope.MEMORY_READ}), workspace="team-b")
    admin = Principal("a", frozenset({Scope.ADMIN}), workspace="team-b")
    operator = Principal("op", frozenset({Scope.CLUSTER_ADMIN}), workspace="default")
    assert member.sees("team-b") and not member.sees("default")
    assert admin.sees("team-b") and not admin.sees("team-a")
    assert operator.sees("team-a") and operator.sees("team-b")
    assert (member.visible_workspace, member.visible_owner) == ("team-b", "b")
    assert (admin.visible_workspace, admin.visible_owner) == ("team-b", None)
    assert (operator.visible_workspace, operator.visible_owner) == (None, None)


def test_a_scope_implies_no_other() -> None:
    writer = Principal("w", frozenset({Scope.MEMORY_WRITE}), token_id="t")
    assert writer.allows(Scope.MEMORY_WRITE)
    assert not writer.allows(Scope.MEMORY_READ)
    assert not writer.allows(Scope.ADMIN)
    assert not writer.loopback and LOCAL_PRINCIPAL.loopback and LOCAL_PRINCIPAL.name == "local"
