"""Recent traces: spans as plain records, the store that keeps them, and a trace as a tree.

A :class:`SpanRecord` is a finished span reduced to plain values (it crosses processes as
is). A :class:`TraceStore` keeps the spans of recent traces: :class:`RecentTraces` in this
process, bounded by traces (the oldest trace goes first) and by spans per trace (later spans of
a full trace are dropped and counted); on a Ray cluster the event hub holds one and every
process sends its spans there. :func:`span_tree` and :func:`render_tree` turn one trace's
spans into the tree ``GET /jobs/{id}/trace`` answers and the text the docs show.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

__all__ = [
    "RecentTraces",
    "SpanRecord",
    "TraceStore",
    "render_forest",
    "render_tree",
    "span_tree",
]


@dataclass(frozen=True, slots=True)
class SpanRecord:
    """One finished span. Ids are lower-case hex (32 digits for the trace, 16 for spans);
    times are Unix nanoseconds; ``status`` is ``unset``, ``ok`` or ``error``."""

    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    kind: str
    service: str
    start_ns: int
    end_ns: int
    status: str = "unset"
    status_detail: str | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict)
    events: Sequence[Mapping[str, Any]] = ()

    @property
    def duration_ms(self) -> float:
        return round((self.end_ns - self.start_ns) / 1e6, 3)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, with ``duration_ms``."""
        return {**asdict(self), "duration_ms": self.duration_ms}


class TraceStore(Protocol):
    """Keeps the spans of recent traces.

    :meth:`add` is called from exporter threads, must be thread-safe and must not block for
    long (a store across processes sends without waiting). :meth:`spans` returns what it holds
    of one trace, in start order, ``[]`` for a trace it does not hold (never seen or evicted).
    """

    def add(self, spans: Sequence[SpanRecord]) -> None: ...

    async def spans(self, trace_id: str) -> list[SpanRecord]: ...


class RecentTraces:
    """A :class:`TraceStore` in this process: at most ``max_traces`` traces (adding a span to
    a trace makes it the newest; the oldest is evicted) of at most ``max_spans`` spans each."""

    def __init__(self, max_traces: int = 500, max_spans: int = 2000) -> None:
        self._max_traces = max_traces
        self._max_spans = max_spans
        self._traces: OrderedDict[str, list[SpanRecord]] = OrderedDict()
        self._lock = threading.Lock()
        self.dropped = 0
        """Spans not kept because their trace was full."""

    def add(self, spans: Sequence[SpanRecord]) -> None:
        with self._lock:
            for span in spans:
                kept = self._traces.get(span.trace_id)
                if kept is None:
                    kept = self._traces[span.trace_id] = []
                    while len(self._traces) > self._max_traces:
                        self._traces.popitem(last=False)
                else:
                    self._traces.move_to_end(span.trace_id)
                if len(kept) >= self._max_spans:
                    self.dropped += 1
                    continue
                kept.append(span)

    def get(self, trace_id: str) -> list[SpanRecord]:
        """:meth:`spans`, synchronously."""
        with self._lock:
            found = list(self._traces.get(trace_id, ()))
        return sorted(found, key=lambda span: (span.start_ns, span.end_ns))

    async def spans(self, trace_id: str) -> list[SpanRecord]:
        return self.get(trace_id)

    def __len__(self) -> int:
        with self._lock:
            return len(self._traces)


def span_tree(spans: Iterable[SpanRecord]) -> list[dict[str, Any]]:
    """The spans as a forest: each span's dict (:meth:`SpanRecord.to_dict`) with its
    ``children`` in start order. A span whose parent is not among ``spans`` (the parent was in
    another trace's share of a store, or is still open) is a root."""
    ordered = sorted(spans, key=lambda span: (span.start_ns, span.end_ns))
    nodes = {span.span_id: {**span.to_dict(), "children": []} for span in ordered}
    roots: list[dict[str, Any]] = []
    for span in ordered:
        parent = nodes.get(span.parent_id) if span.parent_id else None
        (parent["children"] if parent is not None else roots).append(nodes[span.span_id])
    return roots


def render_tree(spans: Iterable[SpanRecord], attributes: Sequence[str] = ()) -> str:
    """The tree as indented text, one span per line: name, service, duration, status when
    not ``unset``, and the listed ``attributes`` each span has."""
    return render_forest(span_tree(spans), attributes)


def render_forest(roots: Iterable[Mapping[str, Any]], attributes: Sequence[str] = ()) -> str:
    """:func:`render_tree` of trees as :func:`span_tree` makes them (or as ``GET
    /jobs/{id}/trace`` returns them)."""
    lines: list[str] = []

    def walk(node: Mapping[str, Any], depth: int) -> None:
        shown = [
            f"{key}={node['attributes'][key]}" for key in attributes if key in node["attributes"]
        ]
        status = "" if node["status"] == "unset" else f" {node['status']}"
        extra = f"  {' '.join(shown)}" if shown else ""
        line = f"{'  ' * depth}{node['name']}  [{node['service']}] {node['duration_ms']:.1f} ms"
        lines.append(f"{line}{status}{extra}")
        for child in node["children"]:
            walk(child, depth + 1)

    for root in roots:
        walk(root, 0)
    return "\n".join(lines)
