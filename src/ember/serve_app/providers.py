"""``GET /providers``: the model providers as this replica sees them, their budgets and usage.

Needs ``models:use``. Every caller sees each provider this replica routes to (name, kind,
``base_url`` without user info, query or fragment, whether it is local, its price) and its
circuit breaker here: breakers live in each replica, so another replica may see another
state. No API key, key variable or adapter option is ever in the answer.

Usage is the rolling day of the usage log (the window budgets count), grouped by workspace,
principal and provider: a caller sees its own usage, an ``admin`` every principal's of its
workspace, ``cluster:admin`` every workspace's. Budgets are those that apply to what the
caller sees: its own principal budget (each visible principal's for an admin; every
configured one for ``cluster:admin``), its workspace's (every configured one for
``cluster:admin``) and each provider's; each with what was spent against it in the rolling
day, counted as :class:`~ember.providers.budget.Budgets` counts it before a call.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Literal
from urllib.parse import urlsplit, urlunsplit

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from ember.auth import Principal, Scope
from ember.config.models import Budget, ProvidersConfig, ProviderSpec
from ember.providers.breaker import BreakerState
from ember.providers.budget import DAY
from ember.providers.router import Router
from ember.serve_app.auth import require
from ember.storage import Database, SqlUsageLog, UsageLog
from ember.storage.clock import utcnow

__all__ = [
    "LOCAL_KINDS",
    "is_local",
    "providers_router",
    "public_url",
]

Caller = Annotated[Principal, Depends(require(Scope.MODELS_USE))]

LOCAL_KINDS = frozenset({"llamacpp", "sentence-transformers"})
"""Adapters that run the model in ember itself."""
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})
_DEFAULT_HOSTS = {"ollama": "127.0.0.1"}
"""Where an adapter without ``base_url`` goes, when that is this machine."""


def public_url(url: str | None) -> str | None:
    """``url`` without what may hold a secret: user info, query and fragment (``None`` for
    none; a URL that cannot be parsed is shown as its scheme and host only, or not at all)."""
    if url is None:
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port is None else f"{host}:{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _loopback(host: str | None) -> bool:
    if host is None:
        return False
    if host.lower().rstrip(".") in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_local(spec: ProviderSpec | None) -> bool:
    """Whether the provider runs on this machine: an in-process adapter, or a server on a
    loopback address (an ``ollama`` without ``base_url`` goes to 127.0.0.1)."""
    if spec is None:
        return False
    if spec.kind in LOCAL_KINDS:
        return True
    if spec.base_url is None:
        return _loopback(_DEFAULT_HOSTS.get(spec.kind))
    try:
        return _loopback(urlsplit(spec.base_url).hostname)
    except ValueError:
        return False


class PriceOut(BaseModel):
    prompt_per_1k_usd: float
    completion_per_1k_usd: float


class BreakerOut(BaseModel):
    state: BreakerState = Field(
        description="`closed`, `open`, or `half_open` (the wait is over: the next call is a trial)."
    )
    retry_in_s: float = Field(description="Seconds until an open breaker lets a trial through.")


class ProviderOut(BaseModel):
    name: str
    kind: str | None = Field(description="The adapter; null for one not in the configuration.")
    base_url: str | None = Field(
        description="Where it is reached, without user info, query or fragment; null: the "
        "adapter's default (or none)."
    )
    local: bool = Field(description="Runs on this machine (in ember, or on loopback).")
    price: PriceOut
    breaker: BreakerOut


class SpentOut(BaseModel):
    requests: int
    tokens: int
    cost_usd: float


class BudgetOut(BaseModel):
    scope: Literal["principal", "workspace", "provider"]
    name: str = Field(description="The principal, workspace or provider it applies to.")
    rule: str = Field(description="The configuration key that sets it: `name`, or `*`.")
    tokens_per_day: int | None
    cost_per_day_usd: float | None = Field(description="Applies only at providers with a price.")
    spent: SpentOut = Field(description="Counted against it in the rolling day.")


class UsageOut(BaseModel):
    workspace: str
    principal: str
    provider: str
    requests: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float


class ProvidersOut(BaseModel):
    since: datetime = Field(description="Start of the rolling day usage and budgets count.")
    providers: list[ProviderOut]
    budgets: list[BudgetOut]
    usage: list[UsageOut]


def _applying(
    budgets: dict[str, Budget], name: str, *, wildcard: bool
) -> tuple[str, Budget] | None:
    """The key and budget that apply to ``name``: its own, else ``*`` (where ``wildcard``)."""
    if name in budgets:
        return name, budgets[name]
    if wildcard and "*" in budgets:
        return "*", budgets["*"]
    return None


def providers_router(
    config: ProvidersConfig,
    router: Router,
    database: Database,
    *,
    now: Callable[[], datetime] = utcnow,
) -> APIRouter:
    """``GET /providers`` over the providers ``router`` serves, described by ``config``,
    with usage from the usage log in ``database``; ``now`` is the wall clock (UTC) the
    rolling day ends at."""
    api = APIRouter(tags=["providers"])
    usage: UsageLog = SqlUsageLog(database)

    def provider_out(name: str) -> ProviderOut:
        spec = config.instances.get(name)
        price = config.prices.get(name)
        breaker = router.breaker(name)
        return ProviderOut(
            name=name,
            kind=None if spec is None else spec.kind,
            base_url=None if spec is None else public_url(spec.base_url),
            local=is_local(spec),
            price=PriceOut(
                prompt_per_1k_usd=0.0 if price is None else price.prompt_per_1k_usd,
                completion_per_1k_usd=0.0 if price is None else price.completion_per_1k_usd,
            ),
            breaker=BreakerOut(state=breaker.state, retry_in_s=round(breaker.retry_in_s(), 3)),
        )

    def budget_out(
        scope: Literal["principal", "workspace", "provider"],
        name: str,
        found: tuple[str, Budget],
        since: datetime,
    ) -> BudgetOut:
        rule, budget = found
        if scope == "principal":
            spent = usage.totals(since=since, principal=name)
        elif scope == "workspace":
            spent = usage.totals(since=since, workspace=name)
        else:
            spent = usage.totals(since=since, provider=name)
        return BudgetOut(
            scope=scope,
            name=name,
            rule=rule,
            tokens_per_day=budget.tokens_per_day,
            cost_per_day_usd=budget.cost_per_day_usd,
            spent=SpentOut(requests=spent.calls, tokens=spent.tokens, cost_usd=spent.cost_usd),
        )

    @api.get("/providers", response_model=ProvidersOut)
    def list_providers(caller: Caller) -> ProvidersOut:
        """The providers with their breakers here, and the budgets and usage of the rolling
        day the caller may see (see the module)."""
        since = now() - DAY
        everyone = caller.visible_workspace is None
        seen = usage.groups(
            since=since, workspace=caller.visible_workspace, principal=caller.visible_owner
        )
        principals = {caller.name} | {group.principal for group in seen}
        workspaces = {caller.workspace} | {group.workspace for group in seen}
        if everyone:
            principals |= set(config.principal_budgets) - {"*"}
            workspaces |= set(config.workspace_budgets) - {"*"}
        budgets = [
            *(
                budget_out("principal", name, found, since)
                for name in sorted(principals)
                if (found := _applying(config.principal_budgets, name, wildcard=True))
            ),
            *(
                budget_out("workspace", name, found, since)
                for name in sorted(workspaces)
                if (found := _applying(config.workspace_budgets, name, wildcard=True))
            ),
            *(
                budget_out("provider", name, found, since)
                for name in sorted(router.providers)
                if (found := _applying(config.provider_budgets, name, wildcard=False))
            ),
        ]
        return ProvidersOut(
            since=since,
            providers=[provider_out(name) for name in sorted(router.providers)],
            budgets=budgets,
            usage=[
                UsageOut(
                    workspace=g.workspace,
                    principal=g.principal,
                    provider=g.provider,
                    requests=g.requests,
                    prompt_tokens=g.prompt_tokens,
                    completion_tokens=g.completion_tokens,
                    cost_usd=round(g.cost_usd, 6),
                )
                for g in seen
            ],
        )

    return api
