"""Metrics: the families ember emits, the port every process records them through, and the
in-process adapter.

Every family is declared once, in :data:`FAMILIES` (name, type, help, label names, histogram
buckets): the code records only declared families, and the dashboards and alert rules are
generated from the same table, so neither can name a metric ember does not emit. Names follow
Prometheus practice: the ``ember_`` prefix, base units (seconds, bytes), counters ending in
``_total``. Labels are closed sets (a route template, a status class, a provider, a model, a
job kind, an outcome code): never an id, a token or free text, so a family's series stay few.

A :class:`Metrics` records into one process's instruments. :class:`PrometheusMetrics` keeps
them in a ``prometheus_client`` registry of its own (never the process-wide one) and renders
them; :class:`NoMetrics` drops everything.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client import Counter as PromCounter
from prometheus_client import Gauge as PromGauge
from prometheus_client import Histogram as PromHistogram

__all__ = [
    "FAMILIES",
    "LATENCY_BUCKETS",
    "NEAR_LIMIT",
    "TOKEN_BUCKETS",
    "Family",
    "Metrics",
    "NoMetrics",
    "PrometheusMetrics",
    "status_class",
]

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
"""Upper bounds (seconds) of the request-latency histograms."""

TOKEN_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
"""Upper bounds (seconds) of the time between tokens."""


@dataclass(frozen=True)
class Family:
    """One metric family: its full name (with ``_total`` for counters), type, help text,
    label names and, for histograms, bucket bounds."""

    name: str
    type: Literal["counter", "gauge", "histogram"]
    help: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()


def _families(*found: Family) -> Mapping[str, Family]:
    return {family.name: family for family in found}


FAMILIES: Mapping[str, Family] = _families(
    Family(
        "ember_http_requests_total",
        "counter",
        "HTTP requests answered, by route template, method and status class.",
        ("route", "method", "status"),
    ),
    Family(
        "ember_http_request_duration_seconds",
        "histogram",
        "Time from a request's arrival to its last byte, by route template and method.",
        ("route", "method"),
        LATENCY_BUCKETS,
    ),
    Family(
        "ember_http_requests_in_flight",
        "gauge",
        "HTTP requests (and open streams) being answered now.",
        ("method",),
    ),
    Family(
        "ember_job_attempts_total",
        "counter",
        "Job attempts ended on a worker, by kind and outcome (ok, cancelled or the error code).",
        ("kind", "outcome"),
    ),
    Family(
        "ember_llm_requests_total",
        "counter",
        "Routed model calls, by the provider that answered (none when none did), operation "
        "and outcome (ok or the error code).",
        ("provider", "operation", "outcome"),
    ),
    Family(
        "ember_llm_request_duration_seconds",
        "histogram",
        "End-to-end time of answered model calls (a stream's to its last token).",
        ("provider", "model", "operation"),
        LATENCY_BUCKETS,
    ),
    Family(
        "ember_llm_time_to_first_token_seconds",
        "histogram",
        "Time from a streamed call to its first token.",
        ("provider", "model"),
        LATENCY_BUCKETS,
    ),
    Family(
        "ember_llm_inter_token_seconds",
        "histogram",
        "Time between a stream's successive deltas.",
        ("provider", "model"),
        TOKEN_BUCKETS,
    ),
    Family(
        "ember_llm_queue_seconds",
        "histogram",
        "Time a call to a hosted model waited for its host before generating.",
        ("model",),
        LATENCY_BUCKETS,
    ),
    Family(
        "ember_llm_tokens_total",
        "counter",
        "Tokens of answered model calls, by direction (input or output).",
        ("provider", "model", "direction"),
    ),
    Family(
        "ember_llm_fallbacks_total",
        "counter",
        "Calls answered by a later candidate than the first.",
        ("operation",),
    ),
    Family(
        "ember_llm_retries_total",
        "counter",
        "Calls sent again to the same provider after a retryable error.",
        ("provider",),
    ),
    Family(
        "ember_llm_breakers_open",
        "gauge",
        "Processes whose circuit breaker for the provider is open (not letting calls through).",
        ("provider",),
    ),
    Family(
        "ember_memory_documents_total",
        "counter",
        "Documents ingested, by outcome (created, updated, unchanged, duplicate or failed).",
        ("outcome",),
    ),
    Family(
        "ember_memory_chunks_total",
        "counter",
        "Chunks written by ingests.",
    ),
    Family(
        "ember_memory_search_duration_seconds",
        "histogram",
        "Time of answered searches, by mode (hybrid, dense or keyword).",
        ("mode",),
        LATENCY_BUCKETS,
    ),
    Family(
        "ember_memory_index_vectors",
        "gauge",
        "Vectors in a collection's live index, as of the last ingest or reindex here.",
        ("collection",),
    ),
    Family(
        "ember_agent_runs_total",
        "counter",
        "Agent runs ended, by outcome (completed, limit_exceeded, budget_exceeded, failed or "
        "cancelled).",
        ("outcome",),
    ),
    Family(
        "ember_agent_steps_total",
        "counter",
        "Model answers agent runs acted on (one per step).",
    ),
    Family(
        "ember_agent_tool_calls_total",
        "counter",
        "Tool calls of agent runs, by tool (unknown for a name no tool of the run has) and "
        "outcome (ok or the error code).",
        ("tool", "outcome"),
    ),
    Family(
        "ember_agent_denials_total",
        "counter",
        "Tool calls of agent runs denied (by the policy, or not an allowed tool), by tool.",
        ("tool",),
    ),
    Family(
        "ember_sandbox_starts_total",
        "counter",
        "Sandboxes started (a one-shot command's, or a session's), by tier.",
        ("tier",),
    ),
    Family(
        "ember_sandbox_start_seconds",
        "histogram",
        "Time from starting a session's sandbox to its executor being ready, by tier.",
        ("tier",),
        LATENCY_BUCKETS,
    ),
    Family(
        "ember_sandbox_kills_total",
        "counter",
        "Sandboxed commands ended by a limit, by tier and limit (timeout, memory, cpu or "
        "file_size).",
        ("tier", "limit"),
    ),
    Family(
        "ember_vm_boots_total",
        "counter",
        "Throwaway VMs booted for commands (VM jobs and the KVM test boot), by acceleration "
        "(kvm or tcg) and how each ended: ok (the guest reported the command's end) or the "
        "error code (vm_timeout, job_cancelled, vm_failed, ...).",
        ("accel", "outcome"),
    ),
    Family(
        "ember_vm_boot_seconds",
        "histogram",
        "Time from a VM's boot starting to its command starting, by acceleration.",
        ("accel",),
        LATENCY_BUCKETS,
    ),
    Family(
        "ember_vm_kills_total",
        "counter",
        "VMs destroyed before their command ended, by acceleration and reason (timeout: "
        "the wall clock; cancelled: the job was cancelled).",
        ("accel", "reason"),
    ),
    Family(
        "ember_vm_running",
        "gauge",
        "Throwaway VMs alive now (from their files being made to being gone), by acceleration.",
        ("accel",),
    ),
    Family(
        "ember_budget_near_limit_total",
        "counter",
        "Budget checks that found a budget 80 % spent or more (with the call's estimate), "
        "by scope (principal, workspace, provider) and limit (tokens, cost_usd).",
        ("scope", "limit"),
    ),
    Family(
        "ember_budget_refusals_total",
        "counter",
        "Sends to a provider a budget refused (each candidate of a call is checked), by scope "
        "and limit.",
        ("scope", "limit"),
    ),
)
"""Every metric family ember emits, by name."""

NEAR_LIMIT = 0.8
"""The share of a budget spent (with the call's estimate) from which a check counts as near
its limit (``ember_budget_near_limit_total``)."""


def status_class(status: int) -> str:
    """``2xx`` for 200 and so on; ``none`` when no response was sent."""
    return f"{status // 100}xx" if status >= 100 else "none"


class Metrics(Protocol):
    """Records samples of the families in :data:`FAMILIES` (thread-safe).

    ``labels`` must name exactly the family's labels.

    :raises KeyError: the family is not declared.
    :raises ValueError: the labels are not the family's, or the family is of another type.
    """

    def inc(self, family: str, amount: float = 1.0, **labels: str) -> None:
        """Add ``amount`` (> 0) to a counter, or to a gauge (any sign)."""

    def observe(self, family: str, value: float, **labels: str) -> None:
        """Observe ``value`` in a histogram."""

    def set(self, family: str, value: float, **labels: str) -> None:
        """Set a gauge."""


class NoMetrics:
    """A :class:`Metrics` that records nothing."""

    def inc(self, family: str, amount: float = 1.0, **labels: str) -> None:
        return None

    def observe(self, family: str, value: float, **labels: str) -> None:
        return None

    def set(self, family: str, value: float, **labels: str) -> None:
        return None


_Instrument = PromCounter | PromGauge | PromHistogram


class PrometheusMetrics:
    """A :class:`Metrics` in a ``prometheus_client`` registry of its own; :meth:`render` is
    its text exposition. ``families`` are the declared ones (default :data:`FAMILIES`)."""

    def __init__(self, families: Mapping[str, Family] = FAMILIES) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self._families = families
        self._made: dict[str, _Instrument] = {}
        self._lock = threading.Lock()

    def inc(self, family: str, amount: float = 1.0, **labels: str) -> None:
        found = self._instrument(family, ("counter", "gauge"), labels)
        target = found.labels(**labels) if labels else found
        target.inc(amount)  # type: ignore[union-attr]

    def observe(self, family: str, value: float, **labels: str) -> None:
        found = self._instrument(family, ("histogram",), labels)
        target = found.labels(**labels) if labels else found
        target.observe(value)  # type: ignore[union-attr]

    def set(self, family: str, value: float, **labels: str) -> None:
        found = self._instrument(family, ("gauge",), labels)
        target = found.labels(**labels) if labels else found
        target.set(value)  # type: ignore[union-attr]

    def render(self) -> bytes:
        """Every family recorded so far, in the Prometheus text format."""
        return generate_latest(self.registry)

    def _instrument(
        self, name: str, types: Sequence[str], labels: Mapping[str, str]
    ) -> _Instrument:
        declared = self._families[name]
        if declared.type not in types:
            raise ValueError(f"{name} is a {declared.type}")
        if set(labels) != set(declared.labels):
            raise ValueError(f"{name} takes the labels {declared.labels}, not {tuple(labels)}")
        made = self._made.get(name)
        if made is None:
            with self._lock:
                made = self._made.get(name) or self._make(declared)
        return made

    def _make(self, family: Family) -> _Instrument:
        made: _Instrument
        if family.type == "counter":
            base = family.name.removesuffix("_total")
            made = PromCounter(base, family.help, family.labels, registry=self.registry)
        elif family.type == "gauge":
            made = PromGauge(family.name, family.help, family.labels, registry=self.registry)
        else:
            made = PromHistogram(
                family.name,
                family.help,
                family.labels,
                registry=self.registry,
                buckets=family.buckets,
            )
        self._made[family.name] = made
        return made
