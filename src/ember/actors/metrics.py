"""Metrics on a Ray cluster: recorded through Ray's own pipeline in every process, read back
from every node.

:class:`RayMetrics` records the families of :data:`~ember.observability.metrics.FAMILIES`
with ``ray.util.metrics``: each process's samples go to its node's metrics agent, which
serves them on the node's metrics export port, prefixed ``ray_`` and labelled with Ray's own
labels (``WorkerId`` and more) besides ember's. Ray forgets a gauge that was not set within
two report intervals, so the values of gauges are set again every ``refresh_s``.

:func:`cluster_text` is what ``GET /metrics`` shows on a cluster: every live node's export,
ember's families only, Ray's prefix and labels dropped and the samples of all processes
summed (counters, histograms and gauges such as requests in flight add up across replicas
and workers). A node on this machine is read on the loopback address.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from typing import Any

import httpx
import ray
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
from ray.util import metrics as ray_metrics

from ember.observability.metrics import FAMILIES, Family

__all__ = ["RAY_LABELS", "RayMetrics", "cluster_text"]

RAY_LABELS = frozenset({"WorkerId", "Component", "NodeAddress", "SessionName", "Version", "JobId"})
"""Labels Ray adds to every sample of an application metric (with ``otel_scope_*``)."""

_PREFIX = "ray_"


class RayMetrics:
    """A :class:`~ember.observability.metrics.Metrics` over ``ray.util.metrics`` (see the
    module); ``families`` are the declared ones."""

    def __init__(self, families: Mapping[str, Family] = FAMILIES, refresh_s: float = 2.0) -> None:
        self._families = families
        self._made: dict[str, Any] = {}
        self._gauges: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        self._lock = threading.Lock()
        self._refresh_s = refresh_s
        self._refresher: threading.Thread | None = None

    def inc(self, family: str, amount: float = 1.0, **labels: str) -> None:
        declared = self._check(family, ("counter", "gauge"), labels)
        if declared.type == "gauge":
            self._move(declared, amount, labels)
        elif amount > 0:
            self._instrument(declared).inc(amount, tags=labels or None)

    def observe(self, family: str, value: float, **labels: str) -> None:
        declared = self._check(family, ("histogram",), labels)
        self._instrument(declared).observe(value, tags=labels or None)

    def set(self, family: str, value: float, **labels: str) -> None:
        declared = self._check(family, ("gauge",), labels)
        key = (declared.name, tuple(sorted(labels.items())))
        with self._lock:
            self._gauges[key] = value
        self._instrument(declared).set(value, tags=labels or None)
        self._refreshing()

    def _move(self, declared: Family, amount: float, labels: Mapping[str, str]) -> None:
        key = (declared.name, tuple(sorted(labels.items())))
        with self._lock:
            value = self._gauges[key] = self._gauges.get(key, 0.0) + amount
        self._instrument(declared).set(value, tags=dict(labels) or None)
        self._refreshing()

    def _check(self, name: str, types: tuple[str, ...], labels: Mapping[str, str]) -> Family:
        declared = self._families[name]
        if declared.type not in types:
            raise ValueError(f"{name} is a {declared.type}")
        if set(labels) != set(declared.labels):
            raise ValueError(f"{name} takes the labels {declared.labels}, not {tuple(labels)}")
        return declared

    def _instrument(self, family: Family) -> Any:
        made = self._made.get(family.name)
        if made is not None:
            return made
        with self._lock:
            made = self._made.get(family.name)
            if made is None:
                made = self._made[family.name] = _make(family)
        return made

    def _refreshing(self) -> None:
        if self._refresher is not None:
            return
        with self._lock:
            if self._refresher is None:
                self._refresher = threading.Thread(
                    target=self._refresh, name="ember-gauges", daemon=True
                )
                self._refresher.start()

    def _refresh(self) -> None:
        stop = threading.Event()
        while not stop.wait(self._refresh_s):
            with self._lock:
                values = list(self._gauges.items())
            for (name, labels), value in values:
                self._instrument(self._families[name]).set(value, tags=dict(labels) or None)


def _make(family: Family) -> Any:
    keys = tuple(family.labels)
    if family.type == "counter":
        return ray_metrics.Counter(
            family.name.removesuffix("_total"), description=family.help, tag_keys=keys
        )
    if family.type == "gauge":
        return ray_metrics.Gauge(family.name, description=family.help, tag_keys=keys)
    return ray_metrics.Histogram(
        family.name, description=family.help, boundaries=list(family.buckets), tag_keys=keys
    )


async def cluster_text(timeout_s: float = 2.0) -> bytes:
    """ember's families on every live node, summed over processes (see the module); a node
    that does not answer within ``timeout_s`` is left out."""
    here = ray.util.get_node_ip_address()  # type: ignore[no-untyped-call]
    targets = [
        f"http://{_host(node['NodeManagerAddress'], here)}:{node['MetricsExportPort']}/metrics"
        for node in ray.nodes()  # type: ignore[no-untyped-call]
        if node.get("Alive") and node.get("MetricsExportPort")
    ]
    async with httpx.AsyncClient(timeout=timeout_s, trust_env=False) as http:
        answers = await asyncio.gather(*(http.get(url) for url in targets), return_exceptions=True)
    texts = [a.text for a in answers if isinstance(a, httpx.Response) and a.status_code == 200]
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Summed(texts))
    return generate_latest(registry)


def _host(address: str, here: str) -> str:
    """Where to reach a node's agent from here: the loopback address for this machine."""
    return "127.0.0.1" if address == here else address


class _Summed(Collector):
    def __init__(self, texts: list[str]) -> None:
        self._texts = texts

    def collect(self) -> list[Metric]:
        families: dict[str, Metric] = {}
        totals: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
        for text in self._texts:
            for found in text_string_to_metric_families(text):
                name = found.name.removeprefix(_PREFIX)
                if not found.name.startswith(_PREFIX + "ember_"):
                    continue
                if name not in families:
                    families[name] = Metric(name, found.documentation, found.type)
                    totals[name] = {}
                for each in found.samples:
                    if each.name.endswith("_created"):
                        continue
                    labels = tuple(
                        sorted(
                            (key, value)
                            for key, value in each.labels.items()
                            if key not in RAY_LABELS and not key.startswith("otel_")
                        )
                    )
                    key = (each.name.removeprefix(_PREFIX), labels)
                    totals[name][key] = totals[name].get(key, 0.0) + each.value
        for name, metric in families.items():
            for (sample_name, labels), value in sorted(totals[name].items()):
                metric.add_sample(sample_name, dict(labels), value)
        return list(families.values())
