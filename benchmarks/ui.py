"""The web UI in Chromium: first load, and a job list and a trace at 10,000 rows against 50.

ember's real app (``create_app`` over a real SQLite database, no Ray: the dispatcher has no
workers, so the jobs stay as written) is served by uvicorn on 127.0.0.1 with the real UI
build. The database holds ``--jobs`` queued jobs of kind ``bulk`` and 50 of kind ``few``; the
trace store holds the trace of one finished job of ``--spans`` spans and another's of 50.

- **first load**: a fresh browser context (empty cache) opens ``/``; the bytes are what the
  page and the assets it names cost gzip-compressed, as the server sends them; *interactive*
  is ``performance.now()`` when the first job row is on screen (the list answered and
  rendered), the median of ``--loads`` loads.
- **list** and **trace**: the page opens with all rows loaded (the list pages through
  ``Load more``), then the virtualised grid is scrolled from top to bottom in 40 steps, one
  animation frame each; reported: rows in the DOM, the time to first row, and the frame time
  (p50, p95, max) while scrolling. The ratio of each at 10,000 against 50 is what the
  virtualisation promises to keep near 1.

    .venv/bin/python benchmarks/ui.py [--jobs 10000] [--spans 10000] [--loads 5]
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import os
import re
import secrets
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn
from playwright.sync_api import Browser, Page, sync_playwright

from ember.config import load_config
from ember.jobs.bus import LocalJobBus
from ember.jobs.dispatcher import LeaseDispatcher
from ember.jobs.events import SqlEventStore
from ember.jobs.hub import EventHub
from ember.jobs.records import NewJob
from ember.jobs.repository import SqlJobRepository
from ember.jobs.states import JobState
from ember.observability.traces import SpanRecord
from ember.serve_app import build_context, create_app
from ember.storage import Database, Migrator

try:
    from benchmarks._stats import percentile
except ModuleNotFoundError:  # run as ``python benchmarks/X.py``: this folder is on sys.path
    from _stats import percentile

CHROMIUM = "/usr/bin/chromium"
SCROLL_STEPS = 40
SCROLL = """async (steps) => {
  const grid = document.querySelector('.vlist');
  const frames = [];
  const step = (grid.scrollHeight - grid.clientHeight) / steps;
  let last = performance.now();
  for (let i = 1; i <= steps; i++) {
    grid.scrollTop = Math.round(step * i);
    await new Promise((resolve) => requestAnimationFrame(() => resolve()));
    const now = performance.now();
    frames.push(now - last);
    last = now;
  }
  return { frames, rows: grid.querySelectorAll('[role=row]').length - 1,
           bottom: grid.scrollTop + grid.clientHeight >= grid.scrollHeight - 2 };
}"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclasses.dataclass(frozen=True)
class Site:
    url: str
    bulk_job: str
    few_job: str


def _trace(trace_id: str, count: int, start_ns: int) -> list[SpanRecord]:
    """``count`` spans, 1 ms apart: a root, then groups of ten (a child of the root and nine
    children of that child)."""
    root = secrets.token_hex(8)
    end = start_ns + count * 1_000_000
    spans = [
        SpanRecord(trace_id, root, None, "job bench", "consumer", "ember-worker", start_ns, end)
    ]
    group = root
    for index in range(1, count):
        span_id, begin = secrets.token_hex(8), start_ns + index * 1_000_000
        leader = index % 10 == 1
        spans.append(
            SpanRecord(
                trace_id,
                span_id,
                root if leader else group,
                f"step {index}",
                "internal",
                "ember-worker",
                begin,
                begin + 900_000,
                attributes={"ember.step": index},
            )
        )
        group = span_id if leader else group
    return spans


@contextmanager
def serving(home: Path, jobs: int, spans: int) -> Iterator[Site]:
    port = _free_port()
    config = load_config(
        None,
        {
            "EMBER_HOME": str(home),
            "EMBER_SERVER_PORT": str(port),
            "EMBER_LOGGING_LEVEL": "WARNING",
            "EMBER_AUTH_RATE_LIMIT_PER_S": "0",
            "EMBER_MODELS_BUNDLED": "false",
            "EMBER_PROVIDERS_INSTANCES": "{}",
            "EMBER_ROUTER_ALIASES": "{}",
            "EMBER_TRACING_SPANS_PER_TRACE": str(max(spans, 50)),
        },
    )
    database = Database.from_config(config)
    Migrator(database).upgrade()
    repository = SqlJobRepository(database)
    for index in range(jobs):
        repository.create(NewJob("bulk", {"n": index}, "local"))
    few = [repository.create(NewJob("few", {"n": i}, "local"))[0] for i in range(50)]
    now = time.time_ns()
    bulk_trace, few_trace = secrets.token_hex(16), secrets.token_hex(16)
    traced = []
    for trace_id, input_ in ((bulk_trace, {"trace": "bulk"}), (few_trace, {"trace": "few"})):
        parent = f"00-{trace_id}-{secrets.token_hex(8)}-01"
        traced.append(repository.create(NewJob("traced", input_, "local", trace_parent=parent))[0])
    for job in repository.claim("traced", "bench", 60.0, limit=2):  # a trace shows once final
        repository.finish(job.id, "bench", JobState.SUCCEEDED, result={})
    hub = EventHub(SqlEventStore(database))
    bus = LocalJobBus(hub, LeaseDispatcher(repository, {}, hub.publish))
    context = build_context(config, bus=bus)
    context.tracing.store.add(_trace(bulk_trace, spans, now))
    context.tracing.store.add(_trace(few_trace, 50, now))
    server = uvicorn.Server(
        uvicorn.Config(create_app(context), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            time.sleep(0.05)
        assert few
        yield Site(f"http://127.0.0.1:{port}", traced[0].id, traced[1].id)
    finally:
        server.should_exit = True
        thread.join(10)
        context.database.dispose()
        database.dispose()


def first_load(browser: Browser, site: Site) -> dict[str, float]:
    """Bytes (gzip) of the page and its assets, and ms to the first job row."""
    context = browser.new_context(base_url=site.url)
    page = context.new_page()
    sizes: list[int] = []

    def count(response: Any) -> None:
        if not re.search(r"/(#.*)?$|/ui/assets/", response.url):
            return
        if response.headers.get("content-encoding") == "gzip":
            sizes.append(int(response.headers["content-length"]))
        else:  # what it would cost compressed
            sizes.append(len(gzip.compress(response.body())))

    page.on("response", count)
    page.goto("/#/jobs?kind=few")
    page.locator("[data-testid=job-row]").first.wait_for()
    interactive = float(page.evaluate("performance.now()"))
    context.close()
    return {"kb": sum(sizes) / 1024, "interactive_ms": interactive}


def measured(page: Page, route: str, ready: str, wanted: int) -> dict[str, Any]:
    """Open ``route``, wait for ``wanted`` rows (paging the list), then scroll it."""
    page.goto("about:blank")
    began = time.perf_counter()
    page.goto(route)
    page.locator(ready).first.wait_for()
    first_row_ms = (time.perf_counter() - began) * 1000
    grid = page.locator(".vlist").first
    rows = int(grid.get_attribute("aria-rowcount") or "1") - 1
    while page.get_by_role("button", name="Load more").count():
        page.get_by_role("button", name="Load more").click()
        page.wait_for_function(
            "(n) => document.querySelector('.vlist').getAttribute('aria-rowcount') != n",
            arg=str(rows + 1),
        )
        rows = int(grid.get_attribute("aria-rowcount") or "1") - 1
    page.evaluate(SCROLL, SCROLL_STEPS)  # a first pass warms the layout
    result = page.evaluate(SCROLL, SCROLL_STEPS)
    frames = result["frames"]
    return {
        "rows_total": rows,
        "rows_in_dom": result["rows"],
        "reached_bottom": result["bottom"],
        "first_row_ms": first_row_ms,
        "frame_p50_ms": percentile(frames, 0.5),
        "frame_p95_ms": percentile(frames, 0.95),
        "frame_max_ms": max(frames),
        "wanted": wanted,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--spans", type=int, default=10_000)
    parser.add_argument("--loads", type=int, default=5)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with (
        tempfile.TemporaryDirectory() as home,
        serving(Path(home), args.jobs, args.spans) as site,
        sync_playwright() as driver,
    ):
        browser = driver.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        loads = [first_load(browser, site) for _ in range(args.loads)]
        page = browser.new_page(base_url=site.url, viewport={"width": 1280, "height": 900})
        page.set_default_timeout(120_000)
        runs = {
            "list 50": measured(page, "/#/jobs?kind=few", "[data-testid=job-row]", 50),
            f"list {args.jobs}": measured(
                page, "/#/jobs?kind=bulk", "[data-testid=job-row]", args.jobs
            ),
            "trace 50": measured(page, f"/#/jobs/{site.few_job}", "[data-testid=trace-row]", 50),
            f"trace {args.spans}": measured(
                page, f"/#/jobs/{site.bulk_job}", "[data-testid=trace-row]", args.spans
            ),
        }
        browser.close()
    kb = statistics.median(load["kb"] for load in loads)
    interactive = statistics.median(load["interactive_ms"] for load in loads)
    print(
        f"first load: {kb:.1f} KB gzip, interactive in {interactive:.0f} ms "
        f"(median of {len(loads)}; each {[round(x['interactive_ms']) for x in loads]})"
    )
    print(
        f"{'view':<14}{'rows':>7}{'in DOM':>8}{'first row ms':>14}"
        f"{'frame p50':>11}{'p95':>7}{'max':>7}"
    )
    for name, run in runs.items():
        print(
            f"{name:<14}{run['rows_total']:>7}{run['rows_in_dom']:>8}"
            f"{run['first_row_ms']:>14.0f}{run['frame_p50_ms']:>11.1f}"
            f"{run['frame_p95_ms']:>7.1f}{run['frame_max_ms']:>7.1f}"
        )
    for kind, big in (("list", args.jobs), ("trace", args.spans)):
        small, large = runs[f"{kind} 50"], runs[f"{kind} {big}"]
        print(
            f"{kind} {big} / 50: frame p95 x{large['frame_p95_ms'] / small['frame_p95_ms']:.2f},"
            f" rows in DOM x{large['rows_in_dom'] / small['rows_in_dom']:.2f}"
        )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
