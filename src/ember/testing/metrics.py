"""The :class:`~ember.observability.metrics.Metrics` contract as a pytest mixin.

An adapter's test module subclasses :class:`MetricsContract`, provides a ``metrics`` fixture
(recording the families of :data:`FAMILIES`) and implements :meth:`MetricsContract.scrape`:
the text exposition the adapter's samples reach (for a cluster adapter, once they have; the
contract waits up to ``scrape_within_s``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import ClassVar

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ember.observability.metrics import Family, Metrics

__all__ = ["FAMILIES", "MetricsContract", "sample"]

FAMILIES: Mapping[str, Family] = {
    family.name: family
    for family in (
        Family("ember_test_calls_total", "counter", "Calls.", ("route", "outcome")),
        Family("ember_test_busy", "gauge", "Busy.", ("pool",)),
        Family("ember_test_seconds", "histogram", "Seconds.", ("route",), (0.1, 1.0, 10.0)),
    )
}
"""The families the contract records."""


def sample(text: str, name: str, labels: Mapping[str, str]) -> float | None:
    """The value of sample ``name`` with exactly ``labels`` (``le`` included for buckets) in
    the exposition ``text``; ``None`` when there is none."""
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == name and dict(found.labels) == dict(labels):
                return float(found.value)
    return None


class MetricsContract:
    """Counters add, gauges go up, down and to a value, histograms count into buckets;
    undeclared families and wrong labels are refused; threads may record at once."""

    scrape_within_s: ClassVar[float] = 0.0

    @pytest.fixture
    def metrics(self) -> Metrics:
        raise NotImplementedError

    def scrape(self, metrics: Metrics) -> str:
        raise NotImplementedError

    def eventually(self, metrics: Metrics, name: str, labels: Mapping[str, str]) -> float | None:
        """The sample once it is there (or ``None`` after ``scrape_within_s``)."""
        deadline = time.monotonic() + self.scrape_within_s
        while True:
            found = sample(self.scrape(metrics), name, labels)
            if found is not None or time.monotonic() >= deadline:
                return found
            time.sleep(0.2)

    def test_a_counter_adds_per_label_set(self, metrics: Metrics) -> None:
        metrics.inc("ember_test_calls_total", route="/a", outcome="ok")
        metrics.inc("ember_test_calls_total", 2, route="/a", outcome="ok")
        metrics.inc("ember_test_calls_total", route="/b", outcome="error")
        ok = {"route": "/a", "outcome": "ok"}
        assert self.eventually(metrics, "ember_test_calls_total", ok) == 3
        error = {"route": "/b", "outcome": "error"}
        assert self.eventually(metrics, "ember_test_calls_total", error) == 1

    def test_a_gauge_is_set_and_moved(self, metrics: Metrics) -> None:
        metrics.set("ember_test_busy", 5, pool="p")
        metrics.inc("ember_test_busy", 2, pool="p")
        metrics.inc("ember_test_busy", -3, pool="p")
        assert self.eventually(metrics, "ember_test_busy", {"pool": "p"}) == 4

    def test_a_histogram_counts_into_its_buckets(self, metrics: Metrics) -> None:
        for value in (0.05, 0.5, 5.0, 50.0):
            metrics.observe("ember_test_seconds", value, route="/a")
        count = self.eventually(metrics, "ember_test_seconds_count", {"route": "/a"})
        assert count == 4
        buckets = {
            bound: sample(
                self.scrape(metrics), "ember_test_seconds_bucket", {"route": "/a", "le": bound}
            )
            for bound in ("0.1", "1.0", "10.0", "+Inf")
        }
        assert buckets == {"0.1": 1, "1.0": 2, "10.0": 3, "+Inf": 4}

    def test_undeclared_families_and_wrong_labels_are_refused(self, metrics: Metrics) -> None:
        with pytest.raises(KeyError):
            metrics.inc("ember_nonexistent_total")
        with pytest.raises(ValueError, match="labels"):
            metrics.inc("ember_test_calls_total", route="/a")
        with pytest.raises(ValueError, match="labels"):
            metrics.inc("ember_test_calls_total", route="/a", outcome="ok", job="123")
        with pytest.raises(ValueError, match="histogram"):
            metrics.inc("ember_test_seconds", route="/a")
        with pytest.raises(ValueError, match="counter"):
            metrics.set("ember_test_calls_total", 1, route="/a", outcome="ok")

    def test_threads_record_at_once_without_losing_counts(self, metrics: Metrics) -> None:
        def record() -> None:
            for _ in range(500):
                metrics.inc("ember_test_calls_total", route="/t", outcome="ok")

        threads = [threading.Thread(target=record) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        labels = {"route": "/t", "outcome": "ok"}
        assert self.eventually(metrics, "ember_test_calls_total", labels) == 4000
