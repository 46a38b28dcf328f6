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
    "Family",
    "Metrics",
    "NoMetrics",
    "PrometheusMetrics",
    "status_class",
]

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
"""Upper bounds (seconds) of the request-latency histograms."""


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
)
"""Every metric family ember emits, by name."""


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
