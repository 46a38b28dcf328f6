import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { getTrace, isAbort, type Span, type Trace } from "../api";
import { formatDuration, prettyJson } from "../format";
import { useTokenVersion } from "../hooks";
import { barOf, flatten, traceWindow, type TraceRow, type TraceWindow } from "../trace";
import { ErrorNotice } from "./ErrorNotice";
import { VirtualList, type Column } from "./VirtualList";

const ROW_HEIGHT = 32;
const MAX_INDENT = 24;
const rowKey = (row: TraceRow): string => row.span.span_id;

function columns(range: TraceWindow): Column<TraceRow>[] {
  return [
    {
      id: "name",
      header: "Span",
      class: "trace-name",
      cell: ({ span, depth }) => (
        <span style={{ paddingLeft: `${Math.min(depth, MAX_INDENT) * 0.9}rem` }} title={span.name}>
          {span.status === "error" && (
            <span class="error-mark">
              <span aria-hidden="true">⚠</span> error
            </span>
          )}{" "}
          {span.name}
        </span>
      ),
    },
    { id: "service", header: "Service", cell: ({ span }) => span.service },
    { id: "duration", header: "Duration", class: "num", cell: ({ span }) => formatDuration(span.duration_ms) },
    {
      id: "bar",
      header: "Timeline",
      cell: ({ span }) => {
        const bar = barOf(span, range);
        return (
          <span class="bar-track" aria-hidden="true">
            <span
              class={span.status === "error" ? "bar bar-error" : "bar"}
              style={{ left: `${bar.left}%`, width: `${bar.width}%` }}
            />
          </span>
        );
      },
    },
  ];
}

function offset(ns: number, range: TraceWindow): string {
  return `+${formatDuration((ns - range.startNs) / 1e6)}`;
}

function SpanDetails({ span, range }: { span: Span; range: TraceWindow }) {
  const attributes = Object.entries(span.attributes ?? {});
  return (
    <section class="span-details" aria-labelledby="span-title">
      <h3 id="span-title">
        {span.name}
        {span.status === "error" && <span class="error-mark"> ⚠ error</span>}
      </h3>
      <dl class="facts">
        <dt>Span ID</dt>
        <dd class="mono">{span.span_id}</dd>
        <dt>Kind</dt>
        <dd>{span.kind}</dd>
        <dt>Service</dt>
        <dd>{span.service}</dd>
        <dt>Start</dt>
        <dd>{offset(span.start_ns, range)}</dd>
        <dt>Duration</dt>
        <dd>{formatDuration(span.duration_ms)}</dd>
        <dt>Status</dt>
        <dd>
          {span.status}
          {span.status_detail ? `: ${span.status_detail}` : ""}
        </dd>
      </dl>
      <h4>Attributes</h4>
      {attributes.length === 0 ? (
        <p class="muted">None.</p>
      ) : (
        <table class="kv">
          <tbody>
            {attributes.map(([key, value]) => (
              <tr key={key}>
                <th scope="row">{key}</th>
                <td class="mono">{typeof value === "string" ? value : prettyJson(value)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <h4>Events</h4>
      {(span.events ?? []).length === 0 ? (
        <p class="muted">None.</p>
      ) : (
        <ol class="span-events">
          {span.events.map((event, i) => (
            <li key={i}>
              <strong>{typeof event.name === "string" ? event.name : "event"}</strong>
              {typeof event.ts_ns === "number" && <span class="muted"> {offset(event.ts_ns, range)}</span>}
              {event.attributes !== undefined && Object.keys(event.attributes as object).length > 0 && (
                <pre class="mono">{prettyJson(event.attributes)}</pre>
              )}
            </li>
          ))}
        </ol>
      )}
    </section>
  );
}

/** The job's trace as a timeline; loads when `final` turns true and on "Refresh trace". */
export function TraceTimeline({ jobId, final }: { jobId: string; final: boolean }) {
  const [trace, setTrace] = useState<Trace | null | undefined>(undefined);
  const [error, setError] = useState<unknown>(null);
  const [loading, setLoading] = useState(false);
  const [selected, setSelected] = useState<string | null>(null);
  const [version, setVersion] = useState(0);
  const tokenVersion = useTokenVersion();
  const details = useRef<HTMLDivElement>(null);

  useEffect(() => {
    if (!final && version === 0) return;
    const controller = new AbortController();
    setLoading(true);
    getTrace(jobId, controller.signal)
      .then((found) => {
        setTrace(found);
        setError(null);
      })
      .catch((caught) => {
        if (!isAbort(caught)) setError(caught);
      })
      .finally(() => {
        if (!controller.signal.aborted) setLoading(false);
      });
    return () => controller.abort();
  }, [jobId, final, version, tokenVersion]);

  const rows = useMemo(() => (trace ? flatten(trace.roots) : []), [trace]);
  const range = useMemo(() => traceWindow(rows), [rows]);
  const cols = useMemo(() => columns(range), [range]);
  const chosen = selected === null ? undefined : rows.find((row) => row.span.span_id === selected);

  return (
    <section class="panel" aria-labelledby="trace-title" aria-busy={loading}>
      <div class="panel-head">
        <h2 id="trace-title">Trace</h2>
        <button type="button" class="button" onClick={() => setVersion((v) => v + 1)} disabled={loading}>
          Refresh trace
        </button>
      </div>
      <ErrorNotice error={error} title="Could not load the trace" />
      {trace === undefined && !loading && error === null && (
        <p class="muted">The trace is loaded once the job has finished.</p>
      )}
      {trace === undefined && loading && <p class="muted">Loading trace…</p>}
      {trace === null && <p class="muted">No trace: this job was not traced, or its trace is no longer kept.</p>}
      {trace && (
        <>
          <p class="muted">
            {trace.spans} {trace.spans === 1 ? "span" : "spans"} over {formatDuration(range.durationNs / 1e6)}; trace{" "}
            <code>{trace.trace_id}</code>. Select a span for its attributes and events.
          </p>
          <VirtualList
            id="trace-grid"
            label="Trace spans"
            items={rows}
            columns={cols}
            template="minmax(14rem, 2fr) 8rem 6.5rem minmax(12rem, 3fr)"
            minWidth="44rem"
            getKey={rowKey}
            rowHeight={ROW_HEIGHT}
            maxHeight={420}
            rowTestId="trace-row"
            rowClass={(row) => (row.span.status === "error" ? "row-error" : "")}
            selectedKey={selected}
            onActivate={(row) => {
              setSelected(row.span.span_id);
              requestAnimationFrame(() => details.current?.scrollIntoView({ block: "nearest" }));
            }}
          />
          <div ref={details}>{chosen && <SpanDetails span={chosen.span} range={range} />}</div>
        </>
      )}
    </section>
  );
}
