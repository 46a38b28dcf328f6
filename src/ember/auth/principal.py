"""Who is making a request, and what they may do."""

from __future__ import annotations

from dataclasses import dataclass

from ember.auth.scopes import ALL_SCOPES, Scope

__all__ = ["DEFAULT_WORKSPACE", "LOCAL_PRINCIPAL", "RESERVED_PRINCIPALS", "Principal"]

DEFAULT_WORKSPACE = "default"
"""The workspace of one-machine use, of the dev bypass, and of every row made before
workspaces existed."""


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller.

    ``token_id`` is the token that authenticated it, ``None`` for the loopback dev bypass;
    ``loopback`` is true only for that bypass. ``workspace`` is the one workspace whose
    objects it may see and touch (every workspace with ``cluster:admin``).
    """

    name: str
    scopes: frozenset[Scope]
    token_id: str | None = None
    loopback: bool = False
    workspace: str = DEFAULT_WORKSPACE

    def allows(self, scope: Scope) -> bool:
        """Whether this principal holds ``scope``: ``cluster:admin`` holds them all,
        ``admin`` all but ``cluster:admin``."""
        if Scope.CLUSTER_ADMIN in self.scopes:
            return True
        if scope is Scope.CLUSTER_ADMIN:
            return False
        return Scope.ADMIN in self.scopes or scope in self.scopes

    def sees(self, workspace: str) -> bool:
        """Whether objects of ``workspace`` exist for this principal."""
        return workspace == self.workspace or Scope.CLUSTER_ADMIN in self.scopes

    @property
    def visible_workspace(self) -> str | None:
        """The workspace its listings are limited to; ``None`` (all) for ``cluster:admin``."""
        return None if Scope.CLUSTER_ADMIN in self.scopes else self.workspace

    @property
    def visible_owner(self) -> str | None:
        """The principal whose jobs it sees in its workspace; ``None`` (everyone's) for an
        ``admin``."""
        return None if self.allows(Scope.ADMIN) else self.name


LOCAL_PRINCIPAL = Principal("local", ALL_SCOPES, token_id=None, loopback=True)
"""The principal of a loopback client while no API token exists (the dev bypass)."""

RESERVED_PRINCIPALS = frozenset({"local", "cli"})
"""Names tokens may not use: ``local`` is the dev bypass, ``cli`` the audit actor of the CLI."""
