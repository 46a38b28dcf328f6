// One collection (`#/memory/<name>`): its facts, Export and Delete, and the Search, Context
// pack and Upload tabs; the open tab and the last query submitted are kept in the URL.

import { useEffect, useRef, useState } from "preact/hooks";
import { ApiError, isAbort } from "../../api";
import { ErrorNotice } from "../../components/ErrorNotice";
import { formatTime } from "../../format";
import { useTokenVersion } from "../../hooks";
import { getCollection, type Collection } from "../../memory";
import { hrefWith, navigate, replaceHash } from "../../router";
import { DeleteControl, ExportButton, type Problem } from "./CollectionActions";
import { ContextPanel } from "./ContextPreview";
import { paramsOf, queryOf, type Query } from "./query";
import { SearchPanel } from "./Search";
import { UploadPanel } from "./Upload";

const TABS = [
  { id: "search", label: "Search" },
  { id: "context", label: "Context pack" },
  { id: "upload", label: "Upload" },
] as const;
type Tab = (typeof TABS)[number]["id"];

export function CollectionView({ name, params }: { name: string; params: URLSearchParams }) {
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
