"""The in-process metrics adapter against the contract, and the families ember declares."""

from __future__ import annotations

import re

import pytest

from ember.observability.metrics import FAMILIES, PrometheusMetrics, status_class
from ember.testing.metrics import FAMILIES as CONTRACT_FAMILIES
from ember.testing.metrics import MetricsContract

FREE_TEXT = re.compile(r"(^|_)(id|token|key|text|prompt|path|url|query|name)$")


class TestPrometheusMetrics(MetricsContract):
    @pytest.fixture
    def metrics(self) -> PrometheusMetrics:
        return PrometheusMetrics(CONTRACT_FAMILIES)

    def scrape(self, metrics: PrometheusMetrics) -> str:  # type: ignore[override]
        return metrics.render().decode()


def test_two_adapters_do_not_share_samples() -> None:
    one, two = PrometheusMetrics(CONTRACT_FAMILIES), PrometheusMetrics(CONTRACT_FAMILIES)
    one.inc("ember_test_calls_total", route="/a", outcome="ok")
    assert b"ember_test_calls_total" in one.render()
    assert b"ember_test_calls_total{" not in two.render()


@pytest.mark.parametrize("family", FAMILIES.values(), ids=lambda f: f.name)
def test_every_family_is_named_and_labelled_by_the_rules(family) -> None:
    assert family.name.startswith("ember_")
    assert family.name.endswith("_total") == (family.type == "counter")
    assert family.help.endswith(".")
    assert (family.type == "histogram") == bool(family.buckets)
    for label in family.labels:
        assert not FREE_TEXT.search(label), f"{family.name}: {label} is no closed set"


@pytest.mark.parametrize(
    ("status", "expected"), [(200, "2xx"), (201, "2xx"), (404, "4xx"), (503, "5xx"), (0, "none")]
)
def test_status_classes(status: int, expected: str) -> None:
    assert status_class(status) == expected


def test_the_docs_list_every_family_as_declared() -> None:
    from tests.conftest import REPO

    page = (REPO / "docs" / "observability.md").read_text()
    block = page.split("<!-- families:begin -->")[1].split("<!-- families:end -->")[0]
    rows = [line for line in block.splitlines() if line.startswith("| `")]
    expected = [
        f"| `{f.name}` | {f.type} | {', '.join(f'`{label}`' for label in f.labels)} | {f.help} |"
        for f in FAMILIES.values()
    ]
    assert rows == expected
