// A trace's span trees flattened depth-first into timeline rows.

import type { Span } from "./api";

export interface TraceRow {
  span: Span;
  depth: number;
}

export interface TraceWindow {
  startNs: number;
  durationNs: number;
}

/** Depth-first, children in start order; iterative, so deep trees cannot overflow the stack. */
export function flatten(roots: readonly Span[]): TraceRow[] {
  const rows: TraceRow[] = [];
  const byStart = (a: Span, b: Span): number => a.start_ns - b.start_ns;
  const stack: TraceRow[] = [...roots]
    .sort(byStart)
    .reverse()
    .map((span) => ({ span, depth: 0 }));
  while (stack.length > 0) {
    const row = stack.pop() as TraceRow;
    rows.push(row);
    const children = [...(row.span.children ?? [])].sort(byStart);
    for (let i = children.length - 1; i >= 0; i--) {
      stack.push({ span: children[i] as Span, depth: row.depth + 1 });
    }
  }
  return rows;
}

/** From the earliest start to the latest end (at least 1 ns). */
export function traceWindow(rows: readonly TraceRow[]): TraceWindow {
  let start = Infinity;
  let end = -Infinity;
  for (const { span } of rows) {
    start = Math.min(start, span.start_ns);
    end = Math.max(end, span.end_ns, span.start_ns);
  }
  if (!Number.isFinite(start)) return { startNs: 0, durationNs: 1 };
  return { startNs: start, durationNs: Math.max(1, end - start) };
}

/** The bar of a span as percentages of the trace window. */
export function barOf(span: Span, window: TraceWindow): { left: number; width: number } {
  const left = ((span.start_ns - window.startNs) / window.durationNs) * 100;
  const width = ((Math.max(span.end_ns, span.start_ns) - span.start_ns) / window.durationNs) * 100;
  const clampedLeft = Math.min(100, Math.max(0, left));
  return { left: clampedLeft, width: Math.min(100 - clampedLeft, Math.max(0, width)) };
}
