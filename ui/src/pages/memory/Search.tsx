// The Search tab: query, top K, mode, MMR and filter; the hits as cards, each with an
// Explain table of its dense, keyword and fused ranks.

import { useEffect, useState } from "preact/hooks";
import { ApiError } from "../../api";
import { ErrorNotice } from "../../components/ErrorNotice";
import { prettyJson, plural } from "../../format";
import { fieldMessages, parseObject, search, SEARCH_MODES, type Hit, type SearchMode } from "../../memory";
import { described, Field, FilterField, QueryField } from "./fields";
import { focusLater, intIn, score } from "./helpers";
import type { PanelProps } from "./query";
import { useRequest } from "./request";

const SEARCH_FIELDS = ["query", "k", "mmr_lambda", "filter"] as const;
const SEARCH_IDS: Record<(typeof SEARCH_FIELDS)[number], string> = {
  query: "search-q",
  k: "search-k",
  mmr_lambda: "search-mmr",
  filter: "search-filter",
};

function ExplainTable({ explain, rank }: { explain: NonNullable<Hit["explain"]>; rank: number }) {
  const cell = (value: number | null) =>
    value === null ? <span title="Not among this search's candidates">—</span> : value;
  return (
    <table class="table mem-explain">
      <caption class="sr-only">How hit {rank} ranked in each search</caption>
      <thead>
        <tr>
          <th scope="col" class="num">Dense rank</th>
          <th scope="col" class="num">Dense score</th>
          <th scope="col" class="num">Keyword rank</th>
          <th scope="col" class="num">Keyword score</th>
          <th scope="col" class="num">Fused score</th>
        </tr>
      </thead>
      <tbody>
        <tr>
          <td class="num" data-testid="explain-dense-rank">{cell(explain.dense_rank)}</td>
          <td class="num">{score(explain.dense_score)}</td>
          <td class="num" data-testid="explain-keyword-rank">{cell(explain.keyword_rank)}</td>
          <td class="num">{score(explain.keyword_score)}</td>
          <td class="num">{score(explain.fused_score)}</td>
        </tr>
      </tbody>
    </table>
  );
}

export function SearchPanel({ name, query, set, commit, autoRun }: PanelProps) {
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [state, run] = useRequest<{ hits: Hit[]; query: string; mode: SearchMode }>();

  const submit = (event?: Event): void => {
    event?.preventDefault();
    const problems: Record<string, string> = {};
    const text = query.q.trim();
    if (text === "") problems.query = "Required.";
    else if (text.length > 10000) problems.query = "At most 10,000 characters.";
    const k = intIn(query.k, 1, 1000);
    if (k === null) problems.k = "A whole number from 1 to 1000.";
    const mmr = query.mmr.trim() === "" ? null : Number(query.mmr);
    if (mmr !== null && !(mmr >= 0 && mmr <= 1)) problems.mmr_lambda = "A number from 0 to 1, or empty.";
    const filter = parseObject(query.filter);
    if (filter.error) problems.filter = filter.error;
    setErrors(problems);
    const first = SEARCH_FIELDS.find((f) => problems[f]);
    if (first || k === null) return first ? focusLater(SEARCH_IDS[first]) : undefined;
    commit();
    const { mode, explain, per } = query;
    run(async (signal) => {
      try {
        const hits = await search(
          name,
          {
            query: text,
            k,
            mode,
            explain,
            per_document: per,
            ...(filter.value ? { filter: filter.value } : {}),
            ...(mmr !== null ? { mmr_lambda: mmr } : {}),
          },
          signal,
        );
        return { hits, query: text, mode };
      } catch (caught) {
        if (caught instanceof ApiError) setErrors(fieldMessages(caught, SEARCH_FIELDS, { invalid_filter: "filter" }));
        throw caught;
      }
    });
  };

  useEffect(() => {
    if (autoRun) submit();
  }, []);

  const result = state.result;
  const status = state.loading
    ? "Searching…"
    : result
      ? `${plural(result.hits.length, "hit")} for “${result.query}” (${result.mode}).`
      : "";

  return (
    <>
      <form class="mem-form" noValidate onSubmit={submit} aria-label="Search">
        <div class="mem-row">
          <QueryField id="search-q" value={query.q} error={errors.query} onInput={(v) => set("q", v)} />
          <button type="submit" class="button primary mem-submit" disabled={state.loading} aria-busy={state.loading}>
            Search
          </button>
        </div>
        <div class="mem-row">
          <Field id="search-k" label="Top K" error={errors.k} class="mem-narrow">
            <input
              type="number"
              inputMode="numeric"
              min={1}
              max={1000}
              step={1}
              {...described("search-k", false, errors.k)}
              value={query.k}
              onInput={(e) => set("k", e.currentTarget.value)}
            />
          </Field>
          <Field id="search-mode" label="Mode" class="mem-narrow">
            <select id="search-mode" value={query.mode} onChange={(e) => set("mode", e.currentTarget.value as SearchMode)}>
              {SEARCH_MODES.map((m) => (
                <option key={m} value={m}>
                  {m}
                </option>
              ))}
            </select>
          </Field>
          <Field id="search-mmr" label="Diversity (MMR λ)" help="0 to 1; empty: off." error={errors.mmr_lambda} class="mem-narrow">
            <input
              type="number"
              inputMode="decimal"
              min={0}
              max={1}
              step="any"
              {...described("search-mmr", true, errors.mmr_lambda)}
              value={query.mmr}
              onInput={(e) => set("mmr", e.currentTarget.value)}
            />
          </Field>
          <div class="mem-checks">
            <Field id="search-explain" label="Explain ranks" check>
              <input
                id="search-explain"
                type="checkbox"
                checked={query.explain}
                onChange={(e) => set("explain", e.currentTarget.checked)}
              />
            </Field>
            <Field id="search-per" label="One hit per document" check>
              <input id="search-per" type="checkbox" checked={query.per} onChange={(e) => set("per", e.currentTarget.checked)} />
            </Field>
          </div>
        </div>
        <FilterField id="search-filter" value={query.filter} error={errors.filter} onInput={(v) => set("filter", v)} />
      </form>

      <p class="muted mem-status" role="status">
        {status}
      </p>
      <ErrorNotice error={state.error} title="Search failed" />
      {result && result.hits.length === 0 && !state.loading && (
        <div class="empty">
          <p>No hits.</p>
          <p>Try other words, another mode, or a looser filter.</p>
        </div>
      )}
      {result && result.hits.length > 0 && (
        <>
          {result.hits.some((h) => h.explain) && (
            <p class="muted">Ranks are positions in each search's own candidates; — means that search did not return the chunk.</p>
          )}
          <ol class="mem-hits" aria-busy={state.loading}>
            {result.hits.map((hit, i) => (
              <li key={hit.chunk_id} class="mem-card" data-testid="search-hit">
                <div class="mem-card-head">
                  <span class="mem-badge" aria-hidden="true">
                    {i + 1}
                  </span>
                  <span class="sr-only">Hit {i + 1}: </span>
                  <strong class="mem-source">{hit.source}</strong>
                  {hit.title && <span class="muted">{hit.title}</span>}
                  <span class="mem-score">
                    score <span class="mono">{score(hit.score)}</span>
                  </span>
                </div>
                <p class="mem-meta muted">
                  v{hit.version} · chars {hit.char_start}–{hit.char_end} · chunk {hit.chunk_id} · document{" "}
                  <code>{hit.document_id}</code>
                </p>
                <p class="mem-text">{hit.text}</p>
                {hit.explain && <ExplainTable explain={hit.explain} rank={i + 1} />}
                {Object.keys(hit.metadata).length > 0 && (
                  <details class="mem-details">
                    <summary>Metadata</summary>
                    <pre class="mono">{prettyJson(hit.metadata)}</pre>
                  </details>
                )}
              </li>
            ))}
          </ol>
        </>
      )}
    </>
  );
}
