"""ember's Grafana dashboard and Prometheus rules, as data: ``scripts/observability_configs.py``
writes them to ``configs/observability/`` and checks the files there are what this module
makes.

Every query names only metrics ember emits (the families of
:data:`~ember.observability.metrics.FAMILIES` and the job system's snapshot families on
``/metrics``) or the recording rules defined here; a test holds them to that, so a renamed
family fails the suite instead of leaving a blank panel or an alert that never fires.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "ALERTS",
    "PANELS",
    "RECORDING",
    "Alert",
    "Panel",
    "Recording",
    "alert_rules",
    "dashboard",
    "recording_rules",
]


@dataclass(frozen=True)
class Recording:
    """A recording rule: ``record`` is ``expr``, evaluated every interval."""

    record: str
    expr: str


@dataclass(frozen=True)
class Alert:
    """An alerting rule: firing while ``expr`` has been true for ``for_``."""

    name: str
    expr: str
    for_: str
    severity: str
    summary: str


@dataclass(frozen=True)
class Panel:
    """A time-series panel in row ``row``: one line per series of each query, with a legend."""

    row: str
    title: str
    unit: str
    queries: tuple[tuple[str, str], ...]
    """``(expr, legend)`` pairs."""


def _rate(family: str, by: str, window: str = "5m") -> str:
    return f"sum by ({by}) (rate({family}[{window}]))"


def _quantile(q: float, family: str, by: str, window: str = "5m") -> str:
    return f"histogram_quantile({q}, sum by (le, {by}) (rate({family}_bucket[{window}])))"


RECORDING: tuple[Recording, ...] = (
    Recording("ember:http_requests:rate5m", _rate("ember_http_requests_total", "route, status")),
    Recording(
        "ember:http_errors:ratio5m",
        'sum(rate(ember_http_requests_total{status="5xx"}[5m]))'
        " / clamp_min(sum(rate(ember_http_requests_total[5m])), 1e-9)",
    ),
    Recording(
        "ember:http_latency_seconds:p95_5m",
        _quantile(0.95, "ember_http_request_duration_seconds", "route"),
    ),
    Recording(
        "ember:llm_ttft_seconds:p95_5m",
        _quantile(0.95, "ember_llm_time_to_first_token_seconds", "provider, model"),
    ),
    Recording(
        "ember:llm_requests:rate5m",
        _rate("ember_llm_requests_total", "provider, operation, outcome"),
    ),
)
"""Recording rules the alerts and panels build on."""

TTFT_SLO_S = 2.0
"""The time to first token the ``EmberTTFTAboveSLO`` alert holds the 95th percentile to."""

ALERTS: tuple[Alert, ...] = (
    Alert(
        "EmberProviderDown",
        'sum(rate(ember_llm_requests_total{provider="none"}[5m])) > 0',
        "5m",
        "critical",
        "Model calls are failing on every candidate: no provider answers.",
    ),
    Alert(
        "EmberBreakerOpen",
        "sum by (provider) (ember_llm_breakers_open) > 0",
        "2m",
        "warning",
        "A provider's circuit breaker is open in {{ $value }} process(es): {{ $labels.provider }}.",
    ),
    Alert(
        "EmberHighErrorRate",
        "ember:http_errors:ratio5m > 0.05",
        "10m",
        "critical",
        "More than 5 % of ember's HTTP answers are 5xx.",
    ),
    Alert(
        "EmberTTFTAboveSLO",
        f"ember:llm_ttft_seconds:p95_5m > {TTFT_SLO_S:g}",
        "10m",
        "warning",
        "95th percentile time to first token of {{ $labels.provider }}/{{ $labels.model }} "
        f"is above {TTFT_SLO_S:g} s.",
    ),
    Alert(
        "EmberQueueBacklog",
        "sum by (kind) (ember_job_queue_depth) > 100",
        "10m",
        "warning",
        "More than 100 {{ $labels.kind }} jobs have waited for a worker for 10 minutes.",
    ),
    Alert(
        "EmberJobsFailing",
        'sum by (kind) (rate(ember_job_attempts_total{outcome!~"ok|cancelled"}[15m])) > 0.1',
        "15m",
        "warning",
        "{{ $labels.kind }} job attempts keep failing.",
    ),
    Alert(
        "EmberBudgetNearLimit",
        "sum by (scope, limit) (increase(ember_budget_near_limit_total[15m])) > 0",
        "0m",
        "warning",
        "A {{ $labels.scope }} budget ({{ $labels.limit }}) is 80 % spent or more.",
    ),
    Alert(
        "EmberSandboxKillsRising",
        "sum by (tier, limit) (rate(ember_sandbox_kills_total[15m])) > 0.05",
        "15m",
        "warning",
        "Sandbox commands ({{ $labels.tier }}) keep being killed by their {{ $labels.limit }} "
        "limit.",
    ),
    Alert(
        "EmberVMKillsRising",
        "sum by (accel, reason) (rate(ember_vm_kills_total[15m])) > 0.05",
        "15m",
        "warning",
        "Throwaway VMs ({{ $labels.accel }}) keep being killed: {{ $labels.reason }}.",
    ),
    Alert(
        "EmberUsageDropped",
        "increase(ember_usage_dropped_total[15m]) > 0",
        "0m",
        "warning",
        "Usage entries were dropped: budgets and usage miss some calls.",
    ),
)
"""The alerting rules."""

PANELS: tuple[Panel, ...] = (
    Panel(
        "HTTP",
        "Requests by route and status",
        "reqps",
        (("ember:http_requests:rate5m", "{{route}} {{status}}"),),
    ),
    Panel(
        "HTTP",
        "Latency p95 by route",
        "s",
        (("ember:http_latency_seconds:p95_5m", "{{route}}"),),
    ),
    Panel(
        "HTTP",
        "In flight",
        "short",
        (("sum by (method) (ember_http_requests_in_flight)", "{{method}}"),),
    ),
    Panel(
        "LLM",
        "Calls by provider and outcome",
        "reqps",
        (("ember:llm_requests:rate5m", "{{provider}} {{operation}} {{outcome}}"),),
    ),
    Panel(
        "LLM",
        "Time to first token p95",
        "s",
        (("ember:llm_ttft_seconds:p95_5m", "{{provider}}/{{model}}"),),
    ),
    Panel(
        "LLM",
        "End-to-end latency p95",
        "s",
        (
            (
                _quantile(0.95, "ember_llm_request_duration_seconds", "provider, model"),
                "{{provider}}/{{model}}",
            ),
        ),
    ),
    Panel(
        "LLM",
        "Time between tokens p50",
        "s",
        (
            (
                _quantile(0.5, "ember_llm_inter_token_seconds", "provider, model"),
                "{{provider}}/{{model}}",
            ),
        ),
    ),
    Panel(
        "LLM",
        "Queue time at the model hosts p95",
        "s",
        ((_quantile(0.95, "ember_llm_queue_seconds", "model"), "{{model}}"),),
    ),
    Panel(
        "LLM",
        "Tokens per second",
        "short",
        (
            (
                _rate("ember_llm_tokens_total", "provider, model, direction"),
                "{{model}} {{direction}}",
            ),
        ),
    ),
    Panel(
        "LLM",
        "Retries, fallbacks and open breakers",
        "short",
        (
            (_rate("ember_llm_retries_total", "provider"), "retries {{provider}}"),
            (_rate("ember_llm_fallbacks_total", "operation"), "fallbacks {{operation}}"),
            ("sum by (provider) (ember_llm_breakers_open)", "open {{provider}}"),
        ),
    ),
    Panel(
        "Jobs",
        "Queue depth by kind",
        "short",
        (("sum by (kind) (ember_job_queue_depth)", "{{kind}}"),),
    ),
    Panel(
        "Jobs",
        "Jobs by state",
        "short",
        (("sum by (state) (ember_jobs)", "{{state}}"),),
    ),
    Panel(
        "Jobs",
        "Attempts by kind and outcome",
        "ops",
        ((_rate("ember_job_attempts_total", "kind, outcome"), "{{kind}} {{outcome}}"),),
    ),
    Panel(
        "Jobs",
        "Attempt duration p95 by kind",
        "s",
        ((_quantile(0.95, "ember_job_duration_seconds", "kind"), "{{kind}}"),),
    ),
    Panel(
        "Memory",
        "Documents ingested by outcome",
        "ops",
        ((_rate("ember_memory_documents_total", "outcome"), "{{outcome}}"),),
    ),
    Panel(
        "Memory",
        "Search latency p95 by mode",
        "s",
        ((_quantile(0.95, "ember_memory_search_duration_seconds", "mode"), "{{mode}}"),),
    ),
    Panel(
        "Memory",
        "Vectors by collection",
        "short",
        (("sum by (collection) (ember_memory_index_vectors)", "{{collection}}"),),
    ),
    Panel(
        "Agents",
        "Runs by outcome",
        "ops",
        ((_rate("ember_agent_runs_total", "outcome"), "{{outcome}}"),),
    ),
    Panel(
        "Agents",
        "Tool calls by tool and outcome",
        "ops",
        ((_rate("ember_agent_tool_calls_total", "tool, outcome"), "{{tool}} {{outcome}}"),),
    ),
    Panel(
        "Agents",
        "Steps and denials",
        "ops",
        (
            ("sum(rate(ember_agent_steps_total[5m]))", "steps"),
            (_rate("ember_agent_denials_total", "tool"), "denied {{tool}}"),
        ),
    ),
    Panel(
        "Sandboxes",
        "Starts by tier",
        "ops",
        ((_rate("ember_sandbox_starts_total", "tier"), "{{tier}}"),),
    ),
    Panel(
        "Sandboxes",
        "Start time p95 by tier",
        "s",
        ((_quantile(0.95, "ember_sandbox_start_seconds", "tier"), "{{tier}}"),),
    ),
    Panel(
        "Sandboxes",
        "Commands killed by limit",
        "ops",
        ((_rate("ember_sandbox_kills_total", "tier, limit"), "{{tier}} {{limit}}"),),
    ),
    Panel(
        "VMs",
        "Boots by acceleration and outcome",
        "ops",
        ((_rate("ember_vm_boots_total", "accel, outcome"), "{{accel}} {{outcome}}"),),
    ),
    Panel(
        "VMs",
        "Boot time p95 by acceleration",
        "s",
        ((_quantile(0.95, "ember_vm_boot_seconds", "accel"), "{{accel}}"),),
    ),
    Panel(
        "VMs",
        "Running and killed",
        "short",
        (
            ("sum by (accel) (ember_vm_running)", "running {{accel}}"),
            (_rate("ember_vm_kills_total", "accel, reason"), "killed {{accel}} {{reason}}"),
        ),
    ),
)
"""The dashboard's panels, by row in order."""


_DATASOURCE = {
    "name": "DS_PROMETHEUS",
    "type": "datasource",
    "query": "prometheus",
    "label": "Prometheus",
}


def recording_rules() -> dict[str, Any]:
    """The recording rules as a Prometheus rule file."""
    rules = [{"record": rule.record, "expr": rule.expr} for rule in RECORDING]
    return {"groups": [{"name": "ember-recording", "interval": "30s", "rules": rules}]}


def alert_rules() -> dict[str, Any]:
    """The alerting rules as a Prometheus rule file."""
    rules = [
        {
            "alert": alert.name,
            "expr": alert.expr,
            "for": alert.for_,
            "labels": {"severity": alert.severity},
            "annotations": {"summary": alert.summary},
        }
        for alert in ALERTS
    ]
    return {"groups": [{"name": "ember-alerts", "rules": rules}]}


def dashboard() -> dict[str, Any]:
    """The Grafana dashboard (JSON model, schema 39) over a Prometheus data source chosen at
    import (``DS_PROMETHEUS``)."""
    source = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
    panels: list[dict[str, Any]] = []
    y = 0
    row = None
    ident = 1
    column = 0
    for panel in PANELS:
        if panel.row != row:
            if column:
                y += 8
            row, column = panel.row, 0
            grid = {"h": 1, "w": 24, "x": 0, "y": y}
            panels.append(
                {"type": "row", "title": row, "id": ident, "collapsed": False, "gridPos": grid}
            )
            ident += 1
            y += 1
        targets = [
            {"datasource": source, "expr": expr, "legendFormat": legend, "refId": chr(65 + i)}
            for i, (expr, legend) in enumerate(panel.queries)
        ]
        panels.append(
            {
                "type": "timeseries",
                "title": panel.title,
                "id": ident,
                "datasource": source,
                "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
                "gridPos": {"h": 8, "w": 8, "x": column * 8, "y": y},
                "targets": targets,
            }
        )
        ident += 1
        column += 1
        if column == 3:
            column = 0
            y += 8
    return {
        "title": "ember",
        "uid": "ember-overview",
        "schemaVersion": 39,
        "time": {"from": "now-6h", "to": "now"},
        "refresh": "30s",
        "tags": ["ember"],
        "templating": {"list": [_DATASOURCE]},
        "panels": panels,
    }
