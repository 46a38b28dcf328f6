"""Readiness: named checks that must all pass before ember takes work.

Later layers add their conditions (pinned models warm, vector indexes loaded) with
:meth:`Readiness.add`; ``/ready`` runs them all concurrently, each under a timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

__all__ = ["Check", "CheckResult", "Readiness"]


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The outcome of one check: ``ok`` and a short human-readable ``detail``."""

    ok: bool
    detail: str


Check = Callable[[], Awaitable[CheckResult]]


class Readiness:
    """A set of named readiness checks."""

    def __init__(self, timeout_s: float = 5.0) -> None:
        self._checks: dict[str, Check] = {}
        self._timeout_s = timeout_s

    def add(self, name: str, check: Check) -> None:
        """Register ``check`` under ``name``; a second check with the same name is an error."""
        if name in self._checks:
            raise ValueError(f"readiness check {name!r} is already registered")
        self._checks[name] = check

    @property
    def names(self) -> list[str]:
        """Names of the registered checks, in registration order."""
        return list(self._checks)

    async def run(self) -> dict[str, CheckResult]:
        """Run every check; a check that raises or times out counts as failed."""

        async def guarded(check: Check) -> CheckResult:
            try:
                return await asyncio.wait_for(check(), self._timeout_s)
            except TimeoutError:
                return CheckResult(False, f"timed out after {self._timeout_s:g} s")
            except Exception as exc:
                return CheckResult(False, str(exc) or type(exc).__name__)

        results = await asyncio.gather(*(guarded(check) for check in self._checks.values()))
        return dict(zip(self._checks, results, strict=True))
