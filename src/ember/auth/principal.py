"""Who is making a request, and what they may do."""

from __future__ import annotations

from dataclasses import dataclass

from ember.auth.scopes import ALL_SCOPES, Scope

__all__ = ["LOCAL_PRINCIPAL", "RESERVED_PRINCIPALS", "Principal"]


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller.

    ``token_id`` is the token that authenticated it, ``None`` for the loopback dev bypass;
    ``loopback`` is true only for that bypass.
    """

    name: str
    scopes: frozenset[Scope]
    token_id: str | None = None
    loopback: bool = False

    def allows(self, scope: Scope) -> bool:
        """Whether this principal holds ``scope`` (``admin`` holds them all)."""
        return Scope.ADMIN in self.scopes or scope in self.scopes


LOCAL_PRINCIPAL = Principal("local", ALL_SCOPES, token_id=None, loopback=True)
"""The principal of a loopback client while no API token exists (the dev bypass)."""

RESERVED_PRINCIPALS = frozenset({"local", "cli"})
"""Names tokens may not use: ``local`` is the dev bypass, ``cli`` the audit actor of the CLI."""
