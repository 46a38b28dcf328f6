"""Readiness: named checks that must all pass before ember takes work.

Later layers add their conditions (pinned models warm, vector indexes loaded) with
:meth:`Readiness.add`; ``/ready`` runs them all concurrently, each under a timeout. The
results are reused for ``cache_s`` seconds (``server.probe_cache_s``), so probes and scrapers
that call often cost one round of checks per interval, not one per call. A failing check's
detail goes to the ``ember.ready`` log (``/ready`` shows it to ``admin`` callers only).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

__all__ = ["Check", "CheckResult", "Readiness"]

log = logging.getLogger("ember.ready")


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The outcome of one check: ``ok`` and a short human-readable ``detail``."""

    ok: bool
    detail: str


Check = Callable[[], Awaitable[CheckResult]]


class Readiness:
    """A set of named readiness checks."""

    def __init__(
        self,
        timeout_s: float = 5.0,
        *,
        cache_s: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._checks: dict[str, Check] = {}
        self._timeout_s = timeout_s
        self._cache_s = cache_s
        self._clock = clock
        self._last: tuple[dict[str, CheckResult], float] | None = None

    def add(self, name: str, check: Check) -> None:
        """Register ``check`` under ``name``; a second check with the same name is an error."""
        if name in self._checks:
            raise ValueError(f"readiness check {name!r} is already registered")
        self._checks[name] = check
        self._last = None

    @property
    def names(self) -> list[str]:
        """Names of the registered checks, in registration order."""
        return list(self._checks)

    async def run(self) -> dict[str, CheckResult]:
        """Run every check, or answer what the last run found when it is under ``cache_s``
        old; a check that raises or times out counts as failed."""
        last = self._last
        if last is not None and self._clock() < last[1]:
            return dict(last[0])
        results = await self._run_all()
        if self._cache_s > 0:
            self._last = (results, self._clock() + self._cache_s)
        return dict(results)

    async def _run_all(self) -> dict[str, CheckResult]:

        async def guarded(check: Check) -> CheckResult:
            try:
                return await asyncio.wait_for(check(), self._timeout_s)
            except TimeoutError:
                return CheckResult(False, f"timed out after {self._timeout_s:g} s")
            except Exception as exc:
                return CheckResult(False, str(exc) or type(exc).__name__)

        results = await asyncio.gather(*(guarded(check) for check in self._checks.values()))
        named = dict(zip(self._checks, results, strict=True))
        for name, result in named.items():
            if not result.ok:
                log.warning("readiness check %s failing: %s", name, result.detail)
        return named
