"""Prices, budgets and usage accounting of provider calls (``providers`` config section).

Before a call, :meth:`Budgets.check` compares what the principal, its workspace and the
provider spent in the rolling day (the last 24 hours of the usage log) plus the call's
:class:`Estimate` with their budgets; after it, :meth:`Budgets.record` appends what the call
really used. A provider's price is USD per 1000 prompt and completion tokens
(``providers.prices``; a provider not listed costs 0: a local one). A free provider is never
refused for cost, but its tokens count towards token budgets and are recorded like any other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from ember.chat import Usage
from ember.config.models import Budget, Price, ProvidersConfig
from ember.errors import BudgetExceeded
from ember.observability.metrics import NEAR_LIMIT, Metrics, NoMetrics
from ember.storage.clock import utcnow
from ember.storage.protocol import UsageLog
from ember.storage.records import UsageEntry, UsageTotals

__all__ = ["DAY", "Budgets", "Estimate"]

DAY = timedelta(days=1)
"""The rolling window budgets are counted over."""

_FREE = Price()


@dataclass(frozen=True)
class Estimate:
    """What a call will probably use: its prompt, plus ``max_tokens`` of answer."""

    prompt_tokens: int
    completion_tokens: int
    cost_usd: float

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class Budgets:
    """Checks budgets before a call and records usage after it, in a :class:`UsageLog`; counts
    the calls refused and the checks near a limit in ``metrics``.

    ``now`` is the wall clock the rolling day is measured from (UTC, injected for tests).
    Both methods do blocking database work; async callers run them in a thread.
    """

    def __init__(
        self,
        config: ProvidersConfig,
        usage: UsageLog,
        *,
        now: Callable[[], datetime] = utcnow,
        metrics: Metrics | None = None,
    ) -> None:
        self._config = config
        self._usage = usage
        self._now = now
        self._metrics = metrics or NoMetrics()

    def price(self, provider: str) -> Price:
        """The provider's price (0 when not listed)."""
        return self._config.prices.get(provider, _FREE)

    def cost(self, provider: str, prompt_tokens: int, completion_tokens: int) -> float:
        """USD these tokens cost at ``provider``."""
        price = self.price(provider)
        return (
            prompt_tokens * price.prompt_per_1k_usd
            + completion_tokens * price.completion_per_1k_usd
        ) / 1000

    def estimate(self, provider: str, prompt_tokens: int, max_tokens: int | None) -> Estimate:
        """The estimate of a call of ``prompt_tokens`` asking for up to ``max_tokens``
        (``providers.estimate_completion_tokens`` when ``None``)."""
        completion = self._config.estimate_completion_tokens if max_tokens is None else max_tokens
        return Estimate(prompt_tokens, completion, self.cost(provider, prompt_tokens, completion))

    def check(
        self, principal: str, provider: str, estimate: Estimate, workspace: str = "default"
    ) -> None:
        """Refuse a call that would pass a budget of the principal, its workspace or the
        provider.

        Token budgets apply to every provider; cost budgets only to a provider with a
        non-zero price. A budget of ``None`` is unlimited; with no budget at all the usage
        log is not read.

        :raises BudgetExceeded: spent in the rolling day plus ``estimate`` passes a budget.
        """
        priced = self.price(provider) != _FREE
        budgets = self._config.principal_budgets
        since = self._now() - DAY
        scopes: list[tuple[str, str, Budget | None, Callable[[], UsageTotals]]] = [
            (
                "principal",
                principal,
                budgets.get(principal, budgets.get("*")),
                lambda: self._usage.totals(since=since, principal=principal),
            ),
            (
                "workspace",
                workspace,
                self._workspace_budget(workspace),
                lambda: self._usage.totals(since=since, workspace=workspace),
            ),
            (
                "provider",
                provider,
                self._config.provider_budgets.get(provider),
                lambda: self._usage.totals(since=since, provider=provider),
            ),
        ]
        for scope, name, budget, spending in scopes:
            tokens = None if budget is None else budget.tokens_per_day
            cost = None if budget is None or not priced else budget.cost_per_day_usd
            if tokens is None and cost is None:
                continue
            spent = spending()
            for limit, allowed, used, asked in (
                ("tokens", tokens, spent.tokens, estimate.tokens),
                ("cost_usd", cost, spent.cost_usd, estimate.cost_usd),
            ):
                if allowed is None:
                    continue
                if used + asked > allowed:
                    self._metrics.inc("ember_budget_refusals_total", scope=scope, limit=limit)
                    raise _exceeded(scope, name, limit, allowed, used, asked)
                if used + asked >= NEAR_LIMIT * allowed:
                    self._metrics.inc("ember_budget_near_limit_total", scope=scope, limit=limit)

    def record(
        self,
        principal: str,
        provider: str,
        model: str,
        usage: Usage,
        *,
        request_id: str | None = None,
        job_id: str | None = None,
        workspace: str = "default",
    ) -> UsageEntry:
        """Append one usage entry, its cost at the provider's price."""
        return self._usage.record(
            self.entry(
                principal,
                provider,
                model,
                usage,
                request_id=request_id,
                job_id=job_id,
                workspace=workspace,
            )
        )

    def entry(
        self,
        principal: str,
        provider: str,
        model: str,
        usage: Usage,
        *,
        request_id: str | None = None,
        job_id: str | None = None,
        workspace: str = "default",
    ) -> UsageEntry:
        """The usage entry of one call, its cost at the provider's price (nothing stored)."""
        return UsageEntry(
            principal=principal,
            provider=provider,
            model=model,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            cost_usd=self.cost(provider, usage.prompt_tokens, usage.completion_tokens),
            request_id=request_id,
            job_id=job_id,
            ts=utcnow(),
            workspace=workspace,
        )

    def _workspace_budget(self, workspace: str) -> Budget | None:
        budgets = self._config.workspace_budgets
        return budgets.get(workspace, budgets.get("*"))

    def applies(self, principal: str, provider: str, workspace: str = "default") -> bool:
        """Whether any budget limits this principal (in ``workspace``) at this provider (no
        database read); :meth:`check` can only refuse when this is true."""
        budgets = self._config.principal_budgets
        priced = self.price(provider) != _FREE
        for budget in (
            budgets.get(principal, budgets.get("*")),
            self._workspace_budget(workspace),
            self._config.provider_budgets.get(provider),
        ):
            if budget is not None and (
                budget.tokens_per_day is not None
                or (priced and budget.cost_per_day_usd is not None)
            ):
                return True
        return False


def _exceeded(
    scope: str, who: str, limit: str, allowed: float, spent: float, estimate: float
) -> BudgetExceeded:
    return BudgetExceeded(
        f"{scope} {who!r}: {limit} per day {allowed:g}, spent {spent:g}, this call ~{estimate:g}",
        extra={
            "scope": scope,
            "name": who,
            "limit": limit,
            "allowed": allowed,
            "spent": spent,
            "estimate": estimate,
        },
    )
