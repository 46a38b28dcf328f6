/**
 * The Memory page. `#/memory` lists collections (paged), creates, imports, exports and deletes
 * them; `#/memory/<name>` shows one collection with three tabs: Search (with explain), Context
 * pack (a preview of `/context`) and Upload (files into `/documents`, in batches). The open tab
 * and the last query submitted live in the URL query (`?tab=context&q=...&budget=800`), and a
 * reload with a query runs it again.
 */

import type { ComponentChildren } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { ApiError, isAbort } from "../api";
import { ErrorNotice } from "../components/ErrorNotice";
import { formatBytes, formatTime, prettyJson } from "../format";
import { useTokenVersion } from "../hooks";
import {
  batches,
  contextPack,
  createCollection,
  deleteCollection,
  exportCollection,
  exportedName,
  fieldMessages,
  getCollection,
  importCollection,
  ingest,
  listCollections,
  NAME_PATTERN,
  parseObject,
  readDocument,
  search,
  SEARCH_MODES,
  type Collection,
  type ContextOut,
  type DocumentIn,
  type Hit,
  type SearchMode,
} from "../memory";
import { announce } from "../notices";
import { hrefWith, navigate, replaceHash } from "../router";
import "./Memory.css";

const PAGE = 100;
const BATCH_FILES = 20;
const BATCH_BYTES = 4 * 1024 * 1024;
const SHOWN_ERRORS = 200;
const NAME_RULE = "Lowercase letters, digits, _ and -; 1 to 64 characters, starting with a letter or digit.";
const TEXT_TYPES =
  ".txt,.text,.md,.markdown,.html,.htm,.csv,.tsv,.json,.jsonl,.log,.rst,.xml,.yaml,.yml,.toml,.ini,.pdf,text/*";

const collectionHref = (name: string): string => `#/memory/${encodeURIComponent(name)}`;
const plural = (n: number, one: string, many = `${one}s`): string => `${n.toLocaleString()} ${n === 1 ? one : many}`;
const score = (value: number | null | undefined): string =>
  value === null || value === undefined ? "—" : value.toFixed(4);

function focusLater(id: string): void {
  requestAnimationFrame(() => document.getElementById(id)?.focus());
}

function intIn(text: string, min: number, max: number): number | null {
  const n = Number(text);
  return text.trim() !== "" && Number.isInteger(n) && n >= min && n <= max ? n : null;
}

/** `id`, `aria-describedby` and `aria-invalid` for a control rendered in a `Field`. */
function described(id: string, help: boolean, error?: string) {
  const ids = [help ? `${id}-help` : "", error ? `${id}-error` : ""].filter(Boolean).join(" ");
  return { id, "aria-describedby": ids || undefined, "aria-invalid": error ? true : undefined };
}

function Field(props: {
  id: string;
  label: ComponentChildren;
  help?: ComponentChildren;
  error?: string | undefined;
  check?: boolean;
  class?: string;
  children: ComponentChildren;
}) {
  return (
    <div class={`${props.check ? "field field-check" : "field"} ${props.class ?? ""}`}>
      <label for={props.id}>{props.label}</label>
      {props.children}
      {props.help && (
        <p class="help muted" id={`${props.id}-help`}>
          {props.help}
        </p>
      )}
      {props.error && (
        <p class="field-error" id={`${props.id}-error`}>
          {props.error}
        </p>
      )}
    </div>
  );
}

type Problem = { title: string; error: unknown } | null;

function ExportButton({ name, onError }: { name: string; onError(problem: Problem): void }) {
  const [busy, setBusy] = useState(false);
  const run = async (): Promise<void> => {
    setBusy(true);
    onError(null);
    try {
      await exportCollection(name);
      announce(`Exported ${name}.jsonl.`);
    } catch (error) {
      onError({ title: `Could not export ${name}`, error });
    } finally {
      setBusy(false);
    }
  };
  return (
    <button
      type="button"
      class="button"
      disabled={busy}
      aria-busy={busy}
      aria-label={`Export ${name} as ${name}.jsonl`}
      onClick={() => void run()}
    >
      {busy ? "Exporting…" : "Export"}
    </button>
  );
}

/** Delete with a confirm step: the button turns into "Yes, delete" / "Cancel" (Escape cancels). */
function DeleteControl(props: { name: string; onDeleted(name: string): void; onError(problem: Problem): void }) {
  const { name } = props;
  const [confirming, setConfirming] = useState(false);
  const [busy, setBusy] = useState(false);
  const opener = useRef<HTMLButtonElement>(null);
  const cancel = useRef<HTMLButtonElement>(null);
  const wasOpen = useRef(false);

  useEffect(() => {
    if (confirming) cancel.current?.focus();
    else if (wasOpen.current) opener.current?.focus();
    wasOpen.current = confirming;
  }, [confirming]);

  const remove = async (): Promise<void> => {
    setBusy(true);
    props.onError(null);
    try {
      await deleteCollection(name);
      announce(`Collection ${name} deleted.`);
      props.onDeleted(name);
    } catch (error) {
      props.onError({ title: `Could not delete ${name}`, error });
      setBusy(false);
      setConfirming(false);
    }
  };

  if (!confirming) {
    return (
      <button ref={opener} type="button" class="button" aria-label={`Delete ${name}`} onClick={() => setConfirming(true)}>
        Delete
      </button>
    );
  }
  return (
    <span
      class="mem-confirm"
      role="group"
      aria-label={`Confirm deleting ${name}`}
      onKeyDown={(e) => {
        if (e.key === "Escape" && !busy) {
          e.preventDefault();
          setConfirming(false);
        }
      }}
    >
      <span>Delete {name} and all its documents?</span>
      <button type="button" class="button danger" disabled={busy} aria-busy={busy} onClick={() => void remove()}>
        Yes, delete
      </button>
      <button ref={cancel} type="button" class="button" disabled={busy} onClick={() => setConfirming(false)}>
        Cancel
      </button>
    </span>
  );
}

// ---- Collections (#/memory)

const CREATE_FIELDS = ["name", "description", "embedding_model", "metadata"] as const;

function CreateForm({ onCreated }: { onCreated(collection: Collection): void }) {
  const [name, setName] = useState("");
  const [description, setDescription] = useState("");
  const [model, setModel] = useState("");
  const [metadata, setMetadata] = useState("");
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const [created, setCreated] = useState<string | null>(null);

  const submit = async (event: Event): Promise<void> => {
    event.preventDefault();
    if (busy) return;
    const problems: Record<string, string> = {};
    if (name === "") problems.name = "Required.";
    else if (!NAME_PATTERN.test(name)) problems.name = NAME_RULE;
    if (description.length > 2000) problems.description = "At most 2,000 characters.";
    const meta = parseObject(metadata);
    if (meta.error) problems.metadata = meta.error;
    setErrors(problems);
    setError(null);
    setCreated(null);
    const first = CREATE_FIELDS.find((f) => problems[f]);
    if (first) return focusLater(`create-${first}`);
    setBusy(true);
    try {
      const collection = await createCollection({
        name,
        ...(description ? { description } : {}),
        ...(model.trim() ? { embedding_model: model.trim() } : {}),
        ...(meta.value ? { metadata: meta.value } : {}),
      });
      announce(`Collection ${collection.name} created.`);
      setCreated(collection.name);
      setName("");
      setDescription("");
      setModel("");
      setMetadata("");
      onCreated(collection);
    } catch (caught) {
      setError(caught);
      const byField = fieldMessages(caught, CREATE_FIELDS, { collection_exists: "name" });
      setErrors(byField);
      const field = CREATE_FIELDS.find((f) => byField[f]);
      if (field) focusLater(`create-${field}`);
    } finally {
      setBusy(false);
    }
  };

  return (
    <section class="panel" aria-labelledby="create-title">
      <h2 id="create-title">New collection</h2>
      <form class="form" noValidate onSubmit={(e) => void submit(e)}>
        <Field id="create-name" label="Name (required)" help={NAME_RULE} error={errors.name}>
          <input
            type="text"
            {...described("create-name", true, errors.name)}
            aria-required="true"
            autoComplete="off"
            spellcheck={false}
            value={name}
            onInput={(e) => setName(e.currentTarget.value)}
          />
        </Field>
        <Field id="create-description" label="Description" error={errors.description}>
          <textarea
            {...described("create-description", false, errors.description)}
            rows={2}
            value={description}
            onInput={(e) => setDescription(e.currentTarget.value)}
          />
        </Field>
        <Field
          id="create-embedding_model"
          label="Embedding model"
          help="Optional. Leave empty for the configured model; the server refuses any other."
          error={errors.embedding_model}
        >
          <input
            type="text"
            {...described("create-embedding_model", true, errors.embedding_model)}
            autoComplete="off"
            spellcheck={false}
            value={model}
            onInput={(e) => setModel(e.currentTarget.value)}
          />
        </Field>
        <Field id="create-metadata" label="Metadata" help="Optional JSON object." error={errors.metadata}>
          <textarea
            class="mono"
            {...described("create-metadata", true, errors.metadata)}
            rows={2}
            spellcheck={false}
            placeholder='{"team": "docs"}'
            value={metadata}
            onInput={(e) => setMetadata(e.currentTarget.value)}
          />
        </Field>
        <ErrorNotice error={error} title="The collection was not created" />
        <div class="actions">
          <button type="submit" class="button primary" disabled={busy} aria-busy={busy}>
            Create collection
          </button>
        </div>
        {created && (
          <p>
            Created <a href={collectionHref(created)}>{created}</a>.
          </p>
        )}
      </form>
    </section>
  );
}

function ImportForm({ onImported }: { onImported(): void }) {
  const [file, setFile] = useState<File | null>(null);
  const [name, setName] = useState("");
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const [result, setResult] = useState<{ name: string; counts: [string, number][] } | null>(null);

  const pick = async (picked: File | null): Promise<void> => {
    setFile(picked);
    setResult(null);
    setErrors({});
    if (!picked) return;
    const stem = picked.name.replace(/\.(jsonl|ndjson)$/i, "").toLowerCase();
    const fromFile = (await exportedName(picked)) ?? (NAME_PATTERN.test(stem) ? stem : null);
    if (fromFile) setName(fromFile);
  };

  const submit = async (event: Event): Promise<void> => {
    event.preventDefault();
    if (busy) return;
    const problems: Record<string, string> = {};
    if (!file) problems.file = "Choose an export file.";
    if (name === "") problems.name = "Required.";
    else if (!NAME_PATTERN.test(name)) problems.name = NAME_RULE;
    setErrors(problems);
    setError(null);
    setResult(null);
    if (problems.file) return focusLater("import-file");
    if (problems.name || !file) return focusLater("import-name");
    setBusy(true);
    try {
      const answer = await importCollection(name, file);
      const counts = Object.entries(answer).filter((entry): entry is [string, number] => typeof entry[1] === "number");
      const target = typeof answer.collection === "string" ? answer.collection : name;
      setResult({ name: target, counts });
      announce(`Imported ${file.name} into ${target}.`);
      onImported();
    } catch (caught) {
      setError(caught);
      const byField = fieldMessages(caught, ["name"], {
        collection_exists: "name",
        bad_request: "file",
        dimension_mismatch: "file",
      });
      setErrors(byField);
      if (byField.name) focusLater("import-name");
      else if (byField.file) focusLater("import-file");
    } finally {
      setBusy(false);
    }
  };

  return (
    <section class="panel" aria-labelledby="import-title">
      <h2 id="import-title">Import a collection</h2>
      <form class="form" noValidate onSubmit={(e) => void submit(e)}>
        <Field
          id="import-file"
          label="Export file (required)"
          help="JSON Lines, as Export downloads them."
          error={errors.file}
        >
          <input
            type="file"
            accept=".jsonl,.ndjson,application/x-ndjson"
            {...described("import-file", true, errors.file)}
            aria-required="true"
            onChange={(e) => void pick(e.currentTarget.files?.[0] ?? null)}
          />
        </Field>
        <Field
          id="import-name"
          label="Collection name (required)"
          help="The collection to import into; the export's own name by default."
          error={errors.name}
        >
          <input
            type="text"
            {...described("import-name", true, errors.name)}
            aria-required="true"
            autoComplete="off"
            spellcheck={false}
            value={name}
            onInput={(e) => setName(e.currentTarget.value)}
          />
        </Field>
        <ErrorNotice error={error} title="The import failed" />
        <div class="actions">
          <button type="submit" class="button primary" disabled={busy} aria-busy={busy}>
            {busy ? "Importing…" : "Import"}
          </button>
        </div>
        {result && (
          <p>
            Imported into <a href={collectionHref(result.name)}>{result.name}</a>
            {result.counts.length > 0 && ": "}
            {result.counts.map(([key, value]) => `${key.replace(/_/g, " ")} ${value.toLocaleString()}`).join(", ")}.
          </p>
        )}
      </form>
    </section>
  );
}

function Collections() {
  const [items, setItems] = useState<Collection[] | null>(null);
  const [next, setNext] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [problem, setProblem] = useState<Problem>(null);
  const [loadingMore, setLoadingMore] = useState(false);
  const [reload, setReload] = useState(0);
  const tokenVersion = useTokenVersion();

  useEffect(() => {
    const controller = new AbortController();
    setError(null);
    listCollections(null, PAGE, controller.signal)
      .then((page) => {
        setItems(page.items);
        setNext(page.next);
      })
      .catch((caught) => {
        if (!isAbort(caught)) setError(caught);
      });
    return () => controller.abort();
  }, [tokenVersion, reload]);

  const loadMore = async (): Promise<void> => {
    if (!next || loadingMore) return;
    setLoadingMore(true);
    try {
      const page = await listCollections(next, PAGE);
      setItems((prev) => {
        const seen = new Set((prev ?? []).map((c) => c.name));
        return [...(prev ?? []), ...page.items.filter((c) => !seen.has(c.name))];
      });
      setNext(page.next);
    } catch (caught) {
      setProblem({ title: "Could not load more collections", error: caught });
    } finally {
      setLoadingMore(false);
    }
  };

  const onCreated = (collection: Collection): void =>
    setItems((prev) => {
      if (prev === null) return prev;
      const last = prev[prev.length - 1];
      if (next !== null && last !== undefined && collection.name > last.name) return prev;
      return [...prev.filter((c) => c.name !== collection.name), collection].sort((a, b) => (a.name < b.name ? -1 : 1));
    });

  const onDeleted = (name: string): void => {
    setItems((prev) => prev && prev.filter((c) => c.name !== name));
    focusLater("collections-title");
  };

  return (
    <section aria-labelledby="memory-title">
      <div class="page-head">
        <h1 id="memory-title" tabIndex={-1}>
          Memory
        </h1>
      </div>
      <section class="panel" aria-labelledby="collections-title" aria-busy={items === null && error === null}>
        <h2 id="collections-title" tabIndex={-1}>
          Collections
        </h2>
        {problem && <ErrorNotice error={problem.error} title={problem.title} />}
        <ErrorNotice error={error} title="Could not load the collections" />
        {items === null && error === null && (
          <p class="muted" role="status">
            Loading collections…
          </p>
        )}
        {items !== null && items.length === 0 && (
          <div class="empty">
            <p>No collections yet.</p>
            <p>Create one below, or import an export.</p>
          </div>
        )}
        {items !== null && items.length > 0 && (
          <div class="mem-scroll">
            <table class="table mem-table" aria-labelledby="collections-title">
              <thead>
                <tr>
                  <th scope="col">Name</th>
                  <th scope="col">Description</th>
                  <th scope="col">Embedding model</th>
                  <th scope="col">Created</th>
                  <th scope="col">
                    <span class="sr-only">Actions</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {items.map((c) => (
                  <tr key={c.name} data-testid="collection-row">
                    <td>
                      <a href={collectionHref(c.name)} class="mono">
                        {c.name}
                      </a>
                    </td>
                    <td>{c.description || <span class="muted">—</span>}</td>
                    <td class="mono">{c.embedding_model ?? "—"}</td>
                    <td>
                      <time dateTime={c.created_at}>{formatTime(c.created_at)}</time>
                    </td>
                    <td>
                      <div class="mem-row-actions">
                        <ExportButton name={c.name} onError={setProblem} />
                        <DeleteControl name={c.name} onDeleted={onDeleted} onError={setProblem} />
                      </div>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
        {items !== null && items.length > 0 && (
          <p class="muted">
            {plural(items.length, "collection")} shown{next ? ", more available" : ""}.
          </p>
        )}
        {next && (
          <button type="button" class="button" onClick={() => void loadMore()} disabled={loadingMore} aria-busy={loadingMore}>
            Load more
          </button>
        )}
      </section>
      <div class="mem-columns">
        <CreateForm onCreated={onCreated} />
        <ImportForm onImported={() => setReload((r) => r + 1)} />
      </div>
    </section>
  );
}

// ---- One collection (#/memory/<name>)

const TABS = [
  { id: "search", label: "Search" },
  { id: "context", label: "Context pack" },
  { id: "upload", label: "Upload" },
] as const;
type Tab = (typeof TABS)[number]["id"];

/** The form state of Search and Context (query and filter are shared); numbers as typed. */
interface Query {
  q: string;
  filter: string;
  k: string;
  mode: SearchMode;
  explain: boolean;
  per: boolean;
  mmr: string;
  budget: string;
  ck: string;
}

const DEFAULTS: Query = { q: "", filter: "", k: "10", mode: "hybrid", explain: true, per: false, mmr: "", budget: "1000", ck: "20" };

function queryOf(params: URLSearchParams): Query {
  const mode = params.get("mode");
  return {
    q: params.get("q") ?? "",
    filter: params.get("filter") ?? "",
    k: params.get("k") ?? DEFAULTS.k,
    mode: SEARCH_MODES.find((m) => m === mode) ?? DEFAULTS.mode,
    explain: params.get("explain") !== "0",
    per: params.get("per") === "1",
    mmr: params.get("mmr") ?? "",
    budget: params.get("budget") ?? DEFAULTS.budget,
    ck: params.get("ck") ?? DEFAULTS.ck,
  };
}

function paramsOf(query: Query): Record<string, string | null> {
  const unlessDefault = (key: "k" | "mode" | "budget" | "ck"): string | null =>
    query[key] === DEFAULTS[key] ? null : query[key];
  return {
    q: query.q,
    filter: query.filter,
    k: unlessDefault("k"),
    mode: unlessDefault("mode"),
    explain: query.explain ? null : "0",
    per: query.per ? "1" : null,
    mmr: query.mmr,
    budget: unlessDefault("budget"),
    ck: unlessDefault("ck"),
  };
}

interface PanelProps {
  name: string;
  query: Query;
  set<K extends keyof Query>(key: K, value: Query[K]): void;
  commit(): void;
  autoRun: boolean;
}

/** Runs one request at a time; a new one aborts the last. */
function useRequest<T>() {
  const [state, setState] = useState<{ result: T | null; error: unknown; loading: boolean }>({
    result: null,
    error: null,
    loading: false,
  });
  const controller = useRef<AbortController | null>(null);
  useEffect(() => () => controller.current?.abort(), []);
  const run = (make: (signal: AbortSignal) => Promise<T>): void => {
    controller.current?.abort();
    const current = new AbortController();
    controller.current = current;
    setState((prev) => ({ ...prev, error: null, loading: true }));
    make(current.signal)
      .then((result) => setState({ result, error: null, loading: false }))
      .catch((error) => {
        if (!isAbort(error)) setState({ result: null, error, loading: false });
      });
  };
  return [state, run] as const;
}

function QueryField({ id, value, error, onInput }: { id: string; value: string; error?: string | undefined; onInput(v: string): void }) {
  return (
    <Field id={id} label="Query (required)" error={error} class="mem-grow">
      <input
        type="text"
        enterKeyHint="search"
        {...described(id, false, error)}
        aria-required="true"
        value={value}
        onInput={(e) => onInput(e.currentTarget.value)}
      />
    </Field>
  );
}

function FilterField({ id, value, error, onInput }: { id: string; value: string; error?: string | undefined; onInput(v: string): void }) {
  return (
    <Field
      id={id}
      label="Metadata filter"
      help={
        <>
          Optional JSON, e.g. <code>{'{"lang": "en"}'}</code>, <code>{'{"year": {"$gte": 2020}}'}</code>,{" "}
          <code>{'{"$or": [{"tag": "a"}, {"tag": "b"}]}'}</code>. Keys include <code>source</code> and{" "}
          <code>media_type</code>.
        </>
      }
      error={error}
    >
      <textarea
        class="mono"
        rows={2}
        spellcheck={false}
        {...described(id, true, error)}
        value={value}
        onInput={(e) => onInput(e.currentTarget.value)}
      />
    </Field>
  );
}

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

function SearchPanel({ name, query, set, commit, autoRun }: PanelProps) {
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

/** Each packed chunk's text, cut out of the packed text by its `[n] source (vV, chars a-b)` line. */
function chunkTexts(pack: ContextOut): Map<number, string> {
  const out = new Map<number, string>();
  const heads = pack.chunks.map((c) => `[${c.citation}] ${c.source} (v${c.version}, chars ${c.char_start}-${c.char_end})\n`);
  const starts: number[] = [];
  let from = 0;
  for (const head of heads) {
    const at = pack.text.indexOf(head, from);
    if (at < 0) return out;
    starts.push(at);
    from = at + head.length;
  }
  pack.chunks.forEach((chunk, i) => {
    const start = (starts[i] ?? 0) + (heads[i]?.length ?? 0);
    const end = i + 1 < starts.length ? (starts[i + 1] ?? pack.text.length) - 2 : pack.text.length;
    out.set(chunk.citation, pack.text.slice(start, end));
  });
  return out;
}

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

function ContextPanel({ name, query, set, commit, autoRun }: PanelProps) {
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
  const texts = result ? chunkTexts(result.pack) : new Map<number, string>();

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
                  {texts.has(chunk.citation) && <p class="mem-text">{texts.get(chunk.citation)}</p>}
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

interface Progress {
  files: number;
  done: number;
  created: number;
  updated: number;
  unchanged: number;
  duplicate: number;
  failed: number;
  chunks: number;
  errors: { source: string; code: string; message: string }[];
  indexError: string | null;
  state: "running" | "done" | "stopped" | "failed";
}

const STATE_TEXT: Record<Progress["state"], string> = {
  running: "Uploading…",
  done: "Upload finished.",
  stopped: "Upload stopped; a batch in flight may still have been stored.",
  failed: "Upload stopped by an error.",
};

function UploadPanel({ name }: { name: string }) {
  const [files, setFiles] = useState<File[]>([]);
  const [metadata, setMetadata] = useState("");
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [progress, setProgress] = useState<Progress | null>(null);
  const [fatal, setFatal] = useState<unknown>(null);
  const controller = useRef<AbortController | null>(null);
  useEffect(() => () => controller.current?.abort(), []);
  const running = progress?.state === "running";

  const start = async (event: Event): Promise<void> => {
    event.preventDefault();
    if (running) return;
    const problems: Record<string, string> = {};
    if (files.length === 0) problems.files = "Choose at least one file.";
    const meta = parseObject(metadata);
    if (meta.error) problems.metadata = meta.error;
    setErrors(problems);
    if (problems.files) return focusLater("upload-files");
    if (problems.metadata) return focusLater("upload-metadata");

    const current = new AbortController();
    controller.current = current;
    setFatal(null);
    const p: Progress = {
      files: files.length,
      done: 0,
      created: 0,
      updated: 0,
      unchanged: 0,
      duplicate: 0,
      failed: 0,
      chunks: 0,
      errors: [],
      indexError: null,
      state: "running",
    };
    const show = (): void => setProgress({ ...p, errors: [...p.errors] });
    const fail = (source: string, code: string, message: string): void => {
      p.failed += 1;
      p.errors.push({ source, code, message });
    };
    // A batch refused whole for its size or its content goes again one document at a time.
    const sendDocs = async (docs: DocumentIn[]): Promise<void> => {
      try {
        const answer = await ingest(name, docs, current.signal);
        p.created += answer.created;
        p.updated += answer.updated;
        p.chunks += answer.chunks;
        if (answer.index_error) p.indexError = answer.index_error;
        for (const outcome of answer.documents) {
          if (outcome.status === "unchanged") p.unchanged += 1;
          else if (outcome.status === "duplicate") p.duplicate += 1;
          else if (outcome.status === "failed") fail(outcome.source, outcome.error_code ?? "failed", outcome.error ?? "");
        }
      } catch (caught) {
        if (!(caught instanceof ApiError) || (caught.status !== 413 && caught.status !== 422)) throw caught;
        if (docs.length > 1) {
          for (const doc of docs) await sendDocs([doc]);
        } else {
          fail(docs[0]?.source ?? "", caught.code, caught.detail);
        }
      }
    };
    show();
    try {
      for (const batch of batches(files, BATCH_FILES, BATCH_BYTES)) {
        if (current.signal.aborted) break;
        const docs: DocumentIn[] = [];
        for (const file of batch) {
          try {
            docs.push(await readDocument(file, meta.value));
          } catch (caught) {
            fail(file.name, "unreadable", caught instanceof Error ? caught.message : String(caught));
          }
        }
        if (docs.length > 0) await sendDocs(docs);
        p.done += batch.length;
        show();
      }
      p.state = current.signal.aborted ? "stopped" : "done";
    } catch (caught) {
      if (isAbort(caught)) p.state = "stopped";
      else {
        p.state = "failed";
        setFatal(caught);
      }
    }
    show();
    announce(
      `${STATE_TEXT[p.state]} ${p.done} of ${p.files} files: ${p.created + p.updated} added, ` +
        `${p.unchanged} unchanged, ${p.duplicate} duplicates, ${p.failed} failed.`,
    );
  };

  const totalBytes = files.reduce((sum, f) => sum + f.size, 0);

  return (
    <>
      <form class="mem-form" noValidate onSubmit={(e) => void start(e)} aria-label="Upload files">
        <Field
          id="upload-files"
          label="Files (required)"
          help={
            <>
              Plain text (.txt, .md, .csv, .json, …), HTML and PDF; a <code>.jsonl</code> file is read as a BEIR corpus,
              one document per line. Each file's name is its source; a source sent again replaces its document.
            </>
          }
          error={errors.files}
        >
          <input
            type="file"
            multiple
            accept={TEXT_TYPES}
            disabled={running}
            {...described("upload-files", true, errors.files)}
            aria-required="true"
            onChange={(e) => setFiles(Array.from(e.currentTarget.files ?? []))}
          />
        </Field>
        {files.length > 0 && (
          <p class="muted">
            {plural(files.length, "file")} chosen, {formatBytes(totalBytes)}.
          </p>
        )}
        <Field id="upload-metadata" label="Metadata for every file" help="Optional JSON object; filters see it." error={errors.metadata}>
          <textarea
            class="mono"
            rows={2}
            spellcheck={false}
            placeholder='{"lang": "en"}'
            disabled={running}
            {...described("upload-metadata", true, errors.metadata)}
            value={metadata}
            onInput={(e) => setMetadata(e.currentTarget.value)}
          />
        </Field>
        <div class="actions">
          <button type="submit" class="button primary" disabled={running} aria-busy={running}>
            Upload
          </button>
          {running && (
            <button type="button" class="button" onClick={() => controller.current?.abort()}>
              Stop
            </button>
          )}
        </div>
      </form>

      <ErrorNotice error={fatal} title="The upload stopped" />
      <div class="mem-progress" data-testid="ingest-progress" aria-live="polite">
        {progress && (
          <>
            <p>
              <strong>{STATE_TEXT[progress.state]}</strong> {progress.done.toLocaleString()} / {progress.files.toLocaleString()} files
              done.
            </p>
            <progress
              class="mem-meter"
              value={progress.done}
              max={progress.files}
              aria-label="Files done"
              aria-valuetext={`${progress.done} of ${progress.files} files`}
            />
            <dl class="facts mem-counts">
              <dt>Documents added</dt>
              <dd>
                {(progress.created + progress.updated).toLocaleString()} ({progress.created.toLocaleString()} new,{" "}
                {progress.updated.toLocaleString()} updated)
              </dd>
              <dt>Unchanged</dt>
              <dd>{progress.unchanged.toLocaleString()}</dd>
              <dt>Duplicates</dt>
              <dd>{progress.duplicate.toLocaleString()}</dd>
              <dt>Failed</dt>
              <dd>{progress.failed.toLocaleString()}</dd>
              <dt>Chunks written</dt>
              <dd>{progress.chunks.toLocaleString()}</dd>
            </dl>
            {progress.indexError && (
              <p class="mem-warning">
                Stored, but not in the vector index (keyword search finds them; a reindex repairs it): {progress.indexError}
              </p>
            )}
            {progress.errors.length > 0 && (
              <>
                <h3>Errors</h3>
                <ul class="mem-errors">
                  {progress.errors.slice(0, SHOWN_ERRORS).map((e, i) => (
                    <li key={i}>
                      <strong>{e.source}</strong>: <code>{e.code}</code> {e.message}
                    </li>
                  ))}
                </ul>
                {progress.errors.length > SHOWN_ERRORS && (
                  <p class="muted">{(progress.errors.length - SHOWN_ERRORS).toLocaleString()} more not shown.</p>
                )}
              </>
            )}
          </>
        )}
      </div>
    </>
  );
}

function CollectionView({ name, params }: { name: string; params: URLSearchParams }) {
  const [info, setInfo] = useState<Collection | null>(null);
  const [infoError, setInfoError] = useState<unknown>(null);
  const [problem, setProblem] = useState<Problem>(null);
  const [tab, setTab] = useState<Tab>(() => TABS.find((t) => t.id === params.get("tab"))?.id ?? "search");
  const [query, setQuery] = useState<Query>(() => queryOf(params));
  const [committed, setCommitted] = useState<Query>(query);
  const autoRun = useRef<Tab | null>(params.get("q") ? tab : null);
  const tokenVersion = useTokenVersion();

  useEffect(() => {
    replaceHash(hrefWith(`memory/${encodeURIComponent(name)}`, { tab, ...paramsOf(committed) }));
  }, [tab, committed]);

  useEffect(() => {
    const controller = new AbortController();
    getCollection(name, controller.signal)
      .then((found) => {
        setInfo(found);
        setInfoError(null);
      })
      .catch((caught) => {
        if (!isAbort(caught)) setInfoError(caught);
      });
    return () => controller.abort();
  }, [name, tokenVersion]);

  const missing = infoError instanceof ApiError && infoError.code === "collection_not_found";
  const set = <K extends keyof Query>(key: K, value: Query[K]): void => setQuery((prev) => ({ ...prev, [key]: value }));
  const panel = { name, query, set, commit: () => setCommitted(query) };

  const onTabKey = (event: KeyboardEvent): void => {
    const index = TABS.findIndex((t) => t.id === tab);
    const to =
      event.key === "ArrowRight" ? index + 1 : event.key === "ArrowLeft" ? index - 1 : event.key === "Home" ? 0 : event.key === "End" ? TABS.length - 1 : null;
    if (to === null) return;
    event.preventDefault();
    const next = TABS[(to + TABS.length) % TABS.length];
    if (!next) return;
    setTab(next.id);
    document.getElementById(`tab-${next.id}`)?.focus();
  };

  return (
    <section aria-labelledby="collection-title">
      <div class="page-head">
        <h1 id="collection-title" tabIndex={-1}>
          Collection <span class="mono">{name}</span>
        </h1>
        <div class="mem-row-actions">
          <a href="#/memory">All collections</a>
          {!missing && (
            <>
              <ExportButton name={name} onError={setProblem} />
              <DeleteControl
                name={name}
                onDeleted={() => navigate("#/memory")}
                onError={setProblem}
              />
            </>
          )}
        </div>
      </div>
      {problem && <ErrorNotice error={problem.error} title={problem.title} />}
      <ErrorNotice error={infoError} title="Could not load the collection" />
      {missing && (
        <p>
          <a href="#/memory">Back to the collections</a>
        </p>
      )}
      {info && (
        <div class="panel">
          <dl class="facts">
            <dt>Description</dt>
            <dd>{info.description || "—"}</dd>
            <dt>Embedding model</dt>
            <dd class="mono">{info.embedding_model ?? "—"}</dd>
            <dt>Created</dt>
            <dd>
              <time dateTime={info.created_at}>{formatTime(info.created_at)}</time>
            </dd>
            <dt>ID</dt>
            <dd class="mono">{info.id}</dd>
            {Object.keys(info.metadata).length > 0 && (
              <>
                <dt>Metadata</dt>
                <dd>
                  <code>{JSON.stringify(info.metadata)}</code>
                </dd>
              </>
            )}
          </dl>
        </div>
      )}
      {info === null && infoError === null && (
        <p class="muted" role="status">
          Loading the collection…
        </p>
      )}
      {!missing && (
        <>
          <div class="mem-tabs" role="tablist" aria-label="Collection tools">
            {TABS.map((t) => (
              <button
                key={t.id}
                type="button"
                role="tab"
                class="mem-tab"
                id={`tab-${t.id}`}
                aria-selected={tab === t.id}
                aria-controls={`panel-${t.id}`}
                tabIndex={tab === t.id ? 0 : -1}
                onClick={() => setTab(t.id)}
                onKeyDown={onTabKey}
              >
                {t.label}
              </button>
            ))}
          </div>
          <div class="mem-panel" role="tabpanel" id="panel-search" aria-labelledby="tab-search" hidden={tab !== "search"}>
            <SearchPanel {...panel} autoRun={autoRun.current === "search"} />
          </div>
          <div class="mem-panel" role="tabpanel" id="panel-context" aria-labelledby="tab-context" hidden={tab !== "context"}>
            <ContextPanel {...panel} autoRun={autoRun.current === "context"} />
          </div>
          <div class="mem-panel" role="tabpanel" id="panel-upload" aria-labelledby="tab-upload" hidden={tab !== "upload"}>
            <UploadPanel name={name} />
          </div>
        </>
      )}
    </section>
  );
}

export function Memory({ collection, params }: { collection: string | null; params: URLSearchParams }) {
  return collection === null ? <Collections /> : <CollectionView name={collection} params={params} />;
}
