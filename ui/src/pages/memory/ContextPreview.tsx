// The Context pack tab: a preview of `/context` for a query and token budget, with the token
// report (used of budget, dropped chunks and why), the packed chunks and the packed text.

import { useEffect, useState } from "preact/hooks";
import { ApiError } from "../../api";
import { ErrorNotice } from "../../components/ErrorNotice";
import { contextPack, fieldMessages, parseObject, type ContextOut } from "../../memory";
import { described, Field, FilterField, QueryField } from "./fields";
import { focusLater, intIn, score } from "./helpers";
import { plural } from "../../format";
import type { PanelProps } from "./query";
import { useRequest } from "./request";

/** Each packed chunk's text, cut out of the packed text by its `[n] source (vV, chars a-b)` line. */
const CONTEXT_FIELDS = ["query", "budget_tokens", "k", "filter"] as const;
const CONTEXT_IDS: Record<(typeof CONTEXT_FIELDS)[number], string> = {
  query: "context-q",
  budget_tokens: "context-budget",
  k: "context-k",
  filter: "context-filter",
};

function PackReport({ pack }: { pack: ContextOut }) {
  const percent = pack.budget_tokens > 0 ? Math.round((pack.tokens_used / pack.budget_tokens) * 100) : 0;
  const citationOf = new Map(pack.chunks.map((c) => [c.chunk_id, c.citation]));
  return (
    <div class="mem-report" data-testid="pack-report">
      <p>
        <strong>
          {pack.tokens_used.toLocaleString()} / {pack.budget_tokens.toLocaleString()}
        </strong>{" "}
        tokens used ({percent}%), counted with <code>{pack.tokenizer}</code>; {plural(pack.chunks.length, "chunk")} packed,{" "}
        {pack.dropped.length.toLocaleString()} dropped.
      </p>
      <progress
        class="mem-meter"
        value={pack.tokens_used}
        max={pack.budget_tokens}
        aria-label="Tokens used of the budget"
        aria-valuetext={`${pack.tokens_used} of ${pack.budget_tokens} tokens`}
      />
      {pack.dropped.length > 0 && (
        <div class="mem-scroll">
          <table class="table">
            <caption class="mem-caption">Dropped chunks</caption>
            <thead>
              <tr>
                <th scope="col">Chunk</th>
                <th scope="col">Source</th>
                <th scope="col">Reason</th>
                <th scope="col" class="num">Tokens</th>
              </tr>
            </thead>
            <tbody>
              {pack.dropped.map((d) => {
                const twin = d.duplicate_of === null ? undefined : citationOf.get(d.duplicate_of);
                return (
                  <tr key={d.chunk_id}>
                    <td class="mono">{d.chunk_id}</td>
                    <td>{d.source}</td>
                    <td>
                      {d.reason === "near_duplicate" ? "near duplicate" : "over budget"}
                      {d.duplicate_of !== null && (twin !== undefined ? ` of [${twin}]` : ` of chunk ${d.duplicate_of}`)}{" "}
                      <code>{d.reason}</code>
                    </td>
                    <td class="num">{d.tokens.toLocaleString()}</td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      )}
    </div>
  );
}

export function ContextPanel({ name, query, set, commit, autoRun }: PanelProps) {
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [state, run] = useRequest<{ pack: ContextOut; query: string }>();

  const submit = (event?: Event): void => {
    event?.preventDefault();
    const problems: Record<string, string> = {};
    const text = query.q.trim();
    if (text === "") problems.query = "Required.";
    else if (text.length > 10000) problems.query = "At most 10,000 characters.";
    const budget = intIn(query.budget, 16, 1_000_000);
    if (budget === null) problems.budget_tokens = "A whole number from 16 to 1,000,000.";
    const k = intIn(query.ck, 1, 1000);
    if (k === null) problems.k = "A whole number from 1 to 1000.";
    const filter = parseObject(query.filter);
    if (filter.error) problems.filter = filter.error;
    setErrors(problems);
    const first = CONTEXT_FIELDS.find((f) => problems[f]);
    if (first || budget === null || k === null) return first ? focusLater(CONTEXT_IDS[first]) : undefined;
    commit();
    run(async (signal) => {
      try {
        const pack = await contextPack(
          name,
          { query: text, budget_tokens: budget, k, ...(filter.value ? { filter: filter.value } : {}) },
          signal,
        );
        return { pack, query: text };
      } catch (caught) {
        if (caught instanceof ApiError) setErrors(fieldMessages(caught, CONTEXT_FIELDS, { invalid_filter: "filter" }));
        throw caught;
      }
    });
  };

  useEffect(() => {
    if (autoRun) submit();
  }, []);

  const result = state.result;

  return (
    <>
      <form class="mem-form" noValidate onSubmit={submit} aria-label="Context pack">
        <div class="mem-row">
          <QueryField id="context-q" value={query.q} error={errors.query} onInput={(v) => set("q", v)} />
          <button type="submit" class="button primary mem-submit" disabled={state.loading} aria-busy={state.loading}>
            Pack context
          </button>
        </div>
        <div class="mem-row">
          <Field id="context-budget" label="Token budget" help="16 to 1,000,000." error={errors.budget_tokens} class="mem-narrow">
            <input
              type="number"
              inputMode="numeric"
              min={16}
              max={1_000_000}
              step={1}
              {...described("context-budget", true, errors.budget_tokens)}
              value={query.budget}
              onInput={(e) => set("budget", e.currentTarget.value)}
            />
          </Field>
          <Field id="context-k" label="Candidates" help="Hits considered, 1 to 1000." error={errors.k} class="mem-narrow">
            <input
              type="number"
              inputMode="numeric"
              min={1}
              max={1000}
              step={1}
              {...described("context-k", true, errors.k)}
              value={query.ck}
              onInput={(e) => set("ck", e.currentTarget.value)}
            />
          </Field>
        </div>
        <FilterField id="context-filter" value={query.filter} error={errors.filter} onInput={(v) => set("filter", v)} />
      </form>

      <p class="muted mem-status" role="status">
        {state.loading ? "Packing…" : result ? `Packed ${plural(result.pack.chunks.length, "chunk")} for “${result.query}”.` : ""}
      </p>
      <ErrorNotice error={state.error} title="Context packing failed" />
      {result && (
        <div aria-busy={state.loading}>
          <PackReport pack={result.pack} />
          {result.pack.chunks.length === 0 ? (
            <div class="empty">
              <p>Nothing was packed: no hits, or none fit the budget.</p>
            </div>
          ) : (
            <ol class="mem-hits">
              {result.pack.chunks.map((chunk) => (
                <li key={chunk.chunk_id} class="mem-card" data-testid="pack-chunk">
                  <div class="mem-card-head">
                    <span class="mem-badge">[{chunk.citation}]</span>
                    <strong class="mem-source">{chunk.source}</strong>
                    <span class="mem-score">
                      {plural(chunk.tokens, "token")} · score <span class="mono">{score(chunk.score)}</span>
                    </span>
                  </div>
                  <p class="mem-meta muted">
                    v{chunk.version} · chars {chunk.char_start}–{chunk.char_end} · chunk {chunk.chunk_id} · document{" "}
                    <code>{chunk.document_id}</code>
                  </p>
                  {chunk.text && <p class="mem-text">{chunk.text}</p>}
                </li>
              ))}
            </ol>
          )}
          {result.pack.text && (
            <details class="mem-details">
              <summary>Packed text, as a model would see it</summary>
              <pre class="output" tabIndex={0}>
                {result.pack.text}
              </pre>
            </details>
          )}
        </div>
      )}
    </>
  );
}
