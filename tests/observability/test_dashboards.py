"""The dashboard and the rules cannot drift: every query names only metrics ember emits or
recording rules defined beside it, the files in configs/observability are what the code makes,
promtool accepts the rules, and ember's exposition passes promtool's lint."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from ember.jobs.records import Telemetry
from ember.observability.dashboards import ALERTS, PANELS, RECORDING, dashboard
from ember.observability.metrics import FAMILIES, PrometheusMetrics
from ember.serve_app.metrics import _Snapshot
from tests.conftest import REPO

NAME = re.compile(r"\bember[_:][A-Za-z0-9_:]*")
CONFIGS = REPO / "configs" / "observability"


def emitted() -> set[str]:
    """Every series name ember's ``/metrics`` can hold."""
    names: set[str] = set()
    for family in FAMILIES.values():
        if family.type == "histogram":
            names |= {f"{family.name}_bucket", f"{family.name}_sum", f"{family.name}_count"}
        else:
            names.add(family.name)
    for metric in _Snapshot({}, Telemetry({}, 0)).collect():
        if metric.type == "histogram":
            names |= {f"{metric.name}_bucket", f"{metric.name}_sum", f"{metric.name}_count"}
        elif metric.type == "counter":
            names.add(f"{metric.name}_total")
        else:
            names.add(metric.name)
    return names


def queries() -> list[tuple[str, str]]:
    found = [(f"recording {r.record}", r.expr) for r in RECORDING]
    found += [(f"alert {a.name}", a.expr) for a in ALERTS]
    found += [(f"panel {p.title}", expr) for p in PANELS for expr, _ in p.queries]
    return found


@pytest.mark.parametrize(("where", "expr"), queries(), ids=[w for w, _ in queries()])
def test_every_query_names_only_what_ember_emits(where: str, expr: str) -> None:
    known = emitted() | {rule.record for rule in RECORDING}
    named = set(NAME.findall(expr))
    assert named, f"{where} names no ember metric"
    assert named <= known, f"{where}: {sorted(named - known)} is emitted by nothing"


def test_the_files_are_what_the_code_makes() -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "observability_configs.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_accepts_the_rules() -> None:
    done = subprocess.run(
        ["promtool", "check", "rules", str(CONFIGS / "alerts.yml"), str(CONFIGS / "recording.yml")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in done.stdout
    assert f"SUCCESS: {len(RECORDING)} rules found" in done.stdout


def test_promtool_lints_ember_exposition_clean() -> None:
    metrics = PrometheusMetrics()
    for family in FAMILIES.values():
        labels = dict.fromkeys(family.labels, "x")
        if family.type == "counter":
            metrics.inc(family.name, **labels)
        elif family.type == "gauge":
            metrics.set(family.name, 1, **labels)
        else:
            metrics.observe(family.name, 0.5, **labels)
    done = subprocess.run(
        ["promtool", "check", "metrics"], input=metrics.render(), capture_output=True
    )
    assert done.returncode == 0, (done.stdout + done.stderr).decode()


def test_the_dashboard_has_every_panel_with_unique_ids() -> None:
    model = dashboard()
    panels = [p for p in model["panels"] if p["type"] == "timeseries"]
    assert [p["title"] for p in panels] == [p.title for p in PANELS]
    ids = [p["id"] for p in model["panels"]]
    assert len(ids) == len(set(ids))
    assert all(t["expr"] for p in panels for t in p["targets"])


@pytest.mark.parametrize("alert", ALERTS, ids=lambda a: a.name)
def test_every_alert_is_documented(alert) -> None:
    assert f"| `{alert.name}` |" in (REPO / "docs" / "observability.md").read_text()
