// Models and providers: the registered models (`GET /api/tags`) and where each is loaded
// (`GET /api/ps`), the providers with their circuit breakers as the answering replica sees
// them, and the budgets and rolling-day usage by principal (`GET /providers`). Refreshed every
// 5 s while the page is visible (and auto-refresh is on).

import type { ComponentChildren } from "preact";
import { useEffect, useState } from "preact/hooks";
import { ApiError, isAbort } from "../api";
import { ErrorNotice } from "../components/ErrorNotice";
import { formatBytes, formatTime, shortId } from "../format";
import { usePolling, useTokenVersion } from "../hooks";
import {
  getProviders,
  listRunning,
  listTags,
  loadedEntry,
  type Budget,
  type BreakerState,
  type ModelTag,
  type Provider,
  type ProvidersView,
  type RunningModel,
  type Usage,
} from "../models";
import "./Models.css";

const REFRESH_MS = 5000;

/** One source of the page: its last data (kept while a refresh fails) and its last error. */
interface Loaded<T> {
  data: T | null;
  error: unknown;
}

const EMPTY = { data: null, error: null };

function retryable(error: unknown): boolean {
  return !(error instanceof ApiError) || error.status === 0 || error.status === 429 || error.status >= 500;
}

const count = (n: number): string => n.toLocaleString("en-US");

function usd(value: number): string {
  if (value === 0) return "$0";
  if (Math.abs(value) < 0.01) return `$${value.toFixed(6).replace(/0+$/, "")}`;
  return `$${value.toFixed(2)}`;
}

const BREAKER_TEXT: Record<BreakerState, string> = { closed: "closed", open: "open", half_open: "half-open" };

function BreakerBadge({ breaker }: { breaker: Provider["breaker"] }) {
  const wait = breaker.state === "open" && breaker.retry_in_s > 0 ? `, retry in ${Math.ceil(breaker.retry_in_s)} s` : "";
  return (
    <span class={`badge breaker breaker-${breaker.state}`} data-testid="breaker-state" data-state={breaker.state}>
      {BREAKER_TEXT[breaker.state]}
      {wait}
    </span>
  );
}

/** A table in a keyboard-scrollable region named by its heading. */
function TableRegion({ labelledBy, children }: { labelledBy: string; children: ComponentChildren }) {
  return (
    <div class="models-table-wrap" role="region" aria-labelledby={labelledBy} tabIndex={0}>
      {children}
    </div>
  );
}

function Waiting({ what }: { what: string }) {
  return (
    <p class="muted" role="status">
      Loading {what}…
    </p>
  );
}

function Empty({ children }: { children: ComponentChildren }) {
  return <div class="empty">{children}</div>;
}

function Where({ running }: { running: RunningModel | undefined }) {
  if (!running) return <span class="muted">not loaded</span>;
  const ember = running.ember ?? {};
  const node = ember.node_id ? shortId(ember.node_id) : "—";
  const hosts = ember.replicas ?? 1;
  return (
    <span>
      <span class="mono" title={ember.node_id}>
        {node}
      </span>
      {` · ${hosts} ${hosts === 1 ? "host" : "hosts"} · ${ember.gpu ? "GPU" : "CPU"}`}
    </span>
  );
}

function ModelsTable({ tags, running, hosted, filter }: { tags: ModelTag[]; running: RunningModel[]; hosted: ReadonlySet<string> | null; filter: string }) {
  const needle = filter.trim().toLowerCase();
  const shown = needle ? tags.filter((t) => t.name.toLowerCase().includes(needle) || t.ember.provider.toLowerCase().includes(needle)) : tags;
  if (tags.length === 0) return <Empty><p>No models are registered. Configure providers and aliases, or pin a local model with <code>ember models pin</code>.</p></Empty>;
  if (shown.length === 0) return <Empty><p>No model matches “{filter.trim()}”.</p></Empty>;
  return (
    <TableRegion labelledBy="models-models">
      <table class="models-table">
        <thead>
          <tr>
            <th scope="col">Name</th>
            <th scope="col">Provider</th>
            <th scope="col" class="num">Context</th>
            <th scope="col" class="num">Size</th>
            <th scope="col">Pin</th>
            <th scope="col">Loaded</th>
          </tr>
        </thead>
        <tbody>
          {shown.map((tag) => (
            <tr key={tag.name} data-testid="model-row">
              <th scope="row" class="mono">
                {tag.name}
              </th>
              <td>{tag.ember.provider}</td>
              <td class="num">{tag.ember.context_length ? count(tag.ember.context_length) : "—"}</td>
              <td class="num">{tag.size > 0 ? formatBytes(tag.size) : "—"}</td>
              <td>
                {tag.digest ? (
                  <code title={tag.digest}>{tag.digest.length > 19 ? `${tag.digest.slice(0, 19)}…` : tag.digest}</code>
                ) : (
                  <span class="muted">—</span>
                )}
                {tag.ember.warm ? (
                  <>
                    {" "}
                    <span class="badge badge-succeeded" title="Loaded at start; /ready waits for it">
                      warm
                    </span>
                  </>
                ) : null}
              </td>
              <td>
                <Where running={loadedEntry(tag, running, hosted)} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </TableRegion>
  );
}

function RunningTable({ running }: { running: RunningModel[] }) {
  if (running.length === 0) return <Empty><p>No model is loaded now; a local model loads on its first call.</p></Empty>;
  return (
    <TableRegion labelledBy="models-loaded">
      <table class="models-table">
        <thead>
          <tr>
            <th scope="col">Model</th>
            <th scope="col">Node</th>
            <th scope="col" class="num">Hosts</th>
            <th scope="col">Processor</th>
            <th scope="col" class="num">Size</th>
            <th scope="col" class="num">Queue</th>
            <th scope="col">Until</th>
          </tr>
        </thead>
        <tbody>
          {running.map((model) => {
            const ember = model.ember ?? {};
            const nodes = ember.nodes && ember.nodes.length > 0 ? ember.nodes : ember.node_id ? [ember.node_id] : [];
            return (
              <tr key={model.name}>
                <th scope="row" class="mono">
                  {model.name}
                </th>
                <td class="mono" title={nodes.join(", ")}>
                  {nodes.length > 0 ? [...new Set(nodes.map(shortId))].join(", ") : "—"}
                </td>
                <td class="num">{ember.replicas ?? 1}</td>
                <td>{ember.gpu ? "GPU" : "CPU"}</td>
                <td class="num">{formatBytes(model.size)}</td>
                <td class="num">{ember.queue_depth ?? 0}</td>
                <td>{model.expires_at ? <time dateTime={model.expires_at}>{formatTime(model.expires_at)}</time> : "evicted for room only"}</td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </TableRegion>
  );
}

function ProvidersTable({ providers }: { providers: Provider[] }) {
  if (providers.length === 0) return <Empty><p>No provider is configured (<code>providers.instances</code>).</p></Empty>;
  return (
    <TableRegion labelledBy="models-providers">
      <table class="models-table">
        <thead>
          <tr>
            <th scope="col">Provider</th>
            <th scope="col">Kind</th>
            <th scope="col">Where</th>
            <th scope="col" class="num">Prompt / 1k</th>
            <th scope="col" class="num">Completion / 1k</th>
            <th scope="col">Breaker</th>
          </tr>
        </thead>
        <tbody>
          {providers.map((provider) => (
            <tr key={provider.name} data-testid="provider-row">
              <th scope="row">{provider.name}</th>
              <td>{provider.kind ?? "—"}</td>
              <td>
                <span class={provider.local ? "where where-local" : "where where-remote"}>{provider.local ? "local" : "remote"}</span>{" "}
                {provider.base_url ? <code class="models-url">{provider.base_url}</code> : <span class="muted">default</span>}
              </td>
              <td class="num">{usd(provider.price.prompt_per_1k_usd)}</td>
              <td class="num">{usd(provider.price.completion_per_1k_usd)}</td>
              <td>
                <BreakerBadge breaker={provider.breaker} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </TableRegion>
  );
}

const SCOPE_TEXT: Record<Budget["scope"], string> = { principal: "Principal", workspace: "Workspace", provider: "Provider" };

function Gauge({ used, limit, text }: { used: number; limit: number | null; text: string }) {
  if (limit === null) return <span class="muted">unlimited</span>;
  const share = limit > 0 ? Math.min(1, used / limit) : 1;
  const level = share >= 1 ? "full" : share >= 0.8 ? "near" : "ok";
  return (
    <span class="gauge">
      <span class="gauge-text">{text}</span>
      <span class="gauge-track" aria-hidden="true">
        <span class={`gauge-bar gauge-${level}`} style={{ width: `${Math.round(share * 100)}%` }} />
      </span>
    </span>
  );
}

function BudgetsTable({ budgets }: { budgets: Budget[] }) {
  if (budgets.length === 0) return <Empty><p>No budget applies: calls are limited by nothing but the providers.</p></Empty>;
  return (
    <TableRegion labelledBy="models-budgets">
      <table class="models-table">
        <thead>
          <tr>
            <th scope="col">Applies to</th>
            <th scope="col">Set by</th>
            <th scope="col">Tokens per day</th>
            <th scope="col">Cost per day</th>
            <th scope="col" class="num">Requests</th>
          </tr>
        </thead>
        <tbody>
          {budgets.map((budget) => (
            <tr key={`${budget.scope}:${budget.name}`}>
              <th scope="row">
                {SCOPE_TEXT[budget.scope]} <span class="mono">{budget.name}</span>
              </th>
              <td>{budget.rule === "*" ? "default (*)" : <span class="mono">{budget.rule}</span>}</td>
              <td>
                <Gauge
                  used={budget.spent.tokens}
                  limit={budget.tokens_per_day}
                  text={budget.tokens_per_day === null ? "" : `${count(budget.spent.tokens)} of ${count(budget.tokens_per_day)}`}
                />
              </td>
              <td>
                <Gauge
                  used={budget.spent.cost_usd}
                  limit={budget.cost_per_day_usd}
                  text={budget.cost_per_day_usd === null ? "" : `${usd(budget.spent.cost_usd)} of ${usd(budget.cost_per_day_usd)}`}
                />
              </td>
              <td class="num">{count(budget.spent.requests)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </TableRegion>
  );
}

function byPrincipal(usage: readonly Usage[]): Usage[] {
  return [...usage].sort(
    (a, b) => a.workspace.localeCompare(b.workspace) || a.principal.localeCompare(b.principal) || a.provider.localeCompare(b.provider),
  );
}

function UsageTable({ usage }: { usage: Usage[] }) {
  if (usage.length === 0) return <Empty><p>No calls in the last 24 hours that you may see.</p></Empty>;
  const rows = byPrincipal(usage);
  const workspaces = new Set(rows.map((row) => row.workspace));
  return (
    <TableRegion labelledBy="models-usage">
      <table class="models-table">
        <thead>
          <tr>
            {workspaces.size > 1 && <th scope="col">Workspace</th>}
            <th scope="col">Principal</th>
            <th scope="col">Provider</th>
            <th scope="col" class="num">Requests</th>
            <th scope="col" class="num">Tokens in</th>
            <th scope="col" class="num">Tokens out</th>
            <th scope="col" class="num">Cost</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((row) => (
            <tr key={`${row.workspace}/${row.principal}/${row.provider}`} data-testid="usage-row">
              {workspaces.size > 1 && <td>{row.workspace}</td>}
              <th scope="row">{row.principal}</th>
              <td>{row.provider}</td>
              <td class="num">{count(row.requests)}</td>
              <td class="num">{count(row.prompt_tokens)}</td>
              <td class="num">{count(row.completion_tokens)}</td>
              <td class="num">{usd(row.cost_usd)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </TableRegion>
  );
}

/** Keeps a source's result: its data, or its error beside the data it had (an abort is no
 * error); returns the error, `null` when there is none. */
function settle<T>(result: PromiseSettledResult<T>, set: (update: (prev: Loaded<T>) => Loaded<T>) => void): unknown {
  if (result.status === "fulfilled") {
    set(() => ({ data: result.value, error: null }));
    return null;
  }
  if (isAbort(result.reason)) return null;
  set((prev) => ({ data: prev.data, error: result.reason }));
  return result.reason;
}

function Section({ id, title, children }: { id: string; title: string; children: ComponentChildren }) {
  return (
    <section class="panel models-section" aria-labelledby={id}>
      <h2 id={id}>{title}</h2>
      {children}
    </section>
  );
}

export function Models() {
  const [tags, setTags] = useState<Loaded<ModelTag[]>>(EMPTY);
  const [running, setRunning] = useState<Loaded<RunningModel[]>>(EMPTY);
  const [view, setView] = useState<Loaded<ProvidersView>>(EMPTY);
  const [auto, setAuto] = useState(true);
  const [busy, setBusy] = useState(false);
  const [updated, setUpdated] = useState<Date | null>(null);
  const [filter, setFilter] = useState("");
  const tokenVersion = useTokenVersion();

  useEffect(() => {
    setTags(EMPTY);
    setRunning(EMPTY);
    setView(EMPTY);
  }, [tokenVersion]);

  const refresh = usePolling(
    async (signal) => {
      setBusy(true);
      const results = await Promise.allSettled([listTags(signal), listRunning(signal), getProviders(signal)]);
      if (signal.aborted) return false;
      setBusy(false);
      const errors = [settle(results[0], setTags), settle(results[1], setRunning), settle(results[2], setView)];
      if (errors.some((error) => error === null)) setUpdated(new Date());
      return !errors.every((error) => error !== null && !retryable(error)); // e.g. 401: wait for a new token
    },
    REFRESH_MS,
    [tokenVersion],
    auto,
  );

  const providers = view.data?.providers ?? null;
  const hosted = providers === null ? null : new Set(providers.filter((p) => p.kind === "llamacpp").map((p) => p.name));

  return (
    <section aria-labelledby="models-title" class="models-page">
      <div class="page-head">
        <h1 id="models-title" tabIndex={-1}>
          Models and providers
        </h1>
        <div class="models-controls">
          <label class="field-check models-auto">
            <input type="checkbox" checked={auto} onChange={(e) => setAuto(e.currentTarget.checked)} />
            Refresh every 5 s
          </label>
          <button type="button" class="button" onClick={refresh} aria-describedby="models-updated">
            Refresh now
          </button>
          <span id="models-updated" class="muted models-updated">
            {updated ? `Updated ${formatTime(updated.toISOString())}` : busy ? "Loading…" : "Not loaded yet"}
          </span>
        </div>
      </div>

      <Section id="models-models" title="Models">
        <div class="field models-filter">
          <label for="models-filter-input">Filter models</label>
          <input
            id="models-filter-input"
            type="search"
            value={filter}
            placeholder="name or provider"
            onInput={(e) => setFilter(e.currentTarget.value)}
            autoComplete="off"
            spellcheck={false}
          />
        </div>
        <ErrorNotice error={tags.error} title="Could not list the models" />
        {tags.data === null ? (
          tags.error === null && <Waiting what="models" />
        ) : (
          <ModelsTable tags={tags.data} running={running.data ?? []} hosted={hosted} filter={filter} />
        )}
      </Section>

      <Section id="models-loaded" title="Loaded now">
        <ErrorNotice error={running.error} title="Could not read which models are loaded" />
        {running.data === null ? running.error === null && <Waiting what="loaded models" /> : <RunningTable running={running.data} />}
      </Section>

      <Section id="models-providers" title="Providers">
        <p class="help">Circuit breakers as the server that answered sees them; each API replica keeps its own.</p>
        <ErrorNotice error={view.error} title="Could not read the providers" />
        {providers === null ? view.error === null && <Waiting what="providers" /> : <ProvidersTable providers={providers} />}
      </Section>

      <Section id="models-budgets" title="Budgets">
        {view.data === null ? (
          view.error === null && <Waiting what="budgets" />
        ) : (
          <>
            <p class="help">
              Spent since <time dateTime={view.data.since}>{formatTime(view.data.since)}</time> (the rolling day budgets count).
            </p>
            <BudgetsTable budgets={view.data.budgets} />
          </>
        )}
      </Section>

      <Section id="models-usage" title="Usage in the last 24 hours">
        {view.data === null ? view.error === null && <Waiting what="usage" /> : <UsageTable usage={view.data.usage} />}
      </Section>
    </section>
  );
}
